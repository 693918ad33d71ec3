"""Where integration tests find built models.

Building both models takes ~10 s, so a prebuilt directory (the Makefile builds
``.kaleem/models``) can be shared via ``KALEEM_TEST_MODELS_DIR``; otherwise one directory per
test session is built once and shared by every test module (``ensure_models`` is idempotent).
Tests must never damage this directory: destructive tests work on copies.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV_VAR = "KALEEM_TEST_MODELS_DIR"


def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    return tmp_path_factory.getbasetemp() / "kaleem-models"
