"""Shared fixtures for the quality tests: real ONNX models, the in-process pipeline."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.evaluation.store import LocalEngine, StoreData

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.registry import ensure_models

    configured = os.environ.get("KALEEM_TEST_MODELS_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("models")
    ensure_models(path, names=("e5",))
    return path


def store_data(limit: int = 0) -> StoreData:
    return StoreData.load(
        DATA / "catalog.jsonl", DATA / "knowledge.jsonl", DATA / "questions.jsonl", limit
    )


@pytest.fixture(scope="module")
async def local_engine(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalEngine]:
    """One loaded store per module (embedding it is the slow part); tests use their own
    customer ids, so their conversations never meet."""
    engine = LocalEngine(models_dir, tmp_path_factory.mktemp("local-engine"))
    await engine.load(store_data())
    yield engine
    await engine.close()
