"""Offline and end-to-end evaluation of answer quality (``kaleem eval``)."""
