"""The in-process query embedder the gateway's admin search uses gives the Serve embedder's
vectors (same model files, same encoder), and loads nothing until first used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.encoder import OnnxEncoder
from models.registry import ensure_models
from models.threaded import ThreadedEmbedder
from tests.models.model_dirs import shared_models_dir


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_models_dir(tmp_path_factory)


def test_construction_does_no_io(tmp_path: Path) -> None:
    ThreadedEmbedder(tmp_path / "missing")  # would raise if it looked for the model


async def test_same_vectors_as_the_encoder(models_dir: Path) -> None:
    texts = ["عندكم جزمة رياضية سوداء؟", "red running shoes under 200"]
    embedder = ThreadedEmbedder(models_dir)
    queries = await embedder.embed_queries(texts)
    passages = await embedder.embed_passages(texts)
    reference = OnnxEncoder(ensure_models(models_dir, names=("e5",))["e5"], threads=1)
    assert np.allclose(queries, reference.encode(texts, "query"), atol=1e-5)
    assert np.allclose(passages, reference.encode(texts, "passage"), atol=1e-5)
    assert not np.allclose(queries, passages, atol=1e-3)  # the e5 prefixes differ
