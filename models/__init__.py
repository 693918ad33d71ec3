"""Sentence-encoder models: built offline from PyPI wheels into ONNX, run with onnxruntime.

Entry points: ``models.registry.ensure_models`` (build/verify), ``models.encoder.OnnxEncoder``
(run), ``python -m models build`` (CLI). Nothing here imports Ray, so the build can run
anywhere (CI, image build, Makefile) and the encoder inside any process.
"""
