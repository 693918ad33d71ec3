"""EmbedderDeployment's logic, exercised on the plain class without starting Ray.

``serve.batch`` only needs an event loop and the replica context (for a config warning), so a
stub context is enough; the real Ray/Serve integration test lives elsewhere.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ray import serve

import serve_apps.embedder as embedder_module
from models.encoder import Embeddings, Kind, OnnxEncoder
from models.registry import ensure_models
from models.spec import SPECS
from serve_apps.embedder import QUERY_BATCH_SIZE, EmbedderDeployment, build_embedder
from tests.models.model_dirs import shared_models_dir

Embedder: Any = EmbedderDeployment.func_or_class  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def replica_context(monkeypatch: pytest.MonkeyPatch) -> None:
    config = types.SimpleNamespace(max_ongoing_requests=64)
    context = types.SimpleNamespace(_deployment_config=config)
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)


class FakeEncoder:
    """Deterministic rows (text length, kind flag, call number) and a record of every call."""

    dim = 3

    def __init__(self, path: Path, threads: int = 1, **_: Any) -> None:
        self.path = path
        self.threads = threads
        self.calls: list[tuple[list[str], Kind]] = []

    def encode(self, texts: Sequence[str], kind: Kind) -> Embeddings:
        self.calls.append((list(texts), kind))
        flag = 1.0 if kind == "query" else 2.0
        return np.array([[len(t), flag, len(self.calls)] for t in texts], dtype=np.float32)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setattr(
        embedder_module, "ensure_models", lambda d, names: {n: d / n for n in names}
    )
    monkeypatch.setattr(embedder_module, "OnnxEncoder", FakeEncoder)
    return Embedder(str(tmp_path), "use", 2)


async def test_queries_from_many_callers_share_one_run(fake: Any) -> None:
    texts = [f"question {'x' * i}" for i in range(20)]
    results = await asyncio.gather(*(fake.embed_queries([t]) for t in texts))
    calls = fake._encoder.calls
    assert len(calls) < len(texts)
    assert all(kind == "query" and len(batch) <= QUERY_BATCH_SIZE for batch, kind in calls)
    for text, rows in zip(texts, results, strict=True):
        assert rows.shape == (1, 3)
        assert rows[0, 0] == len(text)


async def test_embed_queries_keeps_input_order(fake: Any) -> None:
    texts = ["aaaa", "a", "aaa", "aa"]
    rows = await fake.embed_queries(texts)
    assert rows.dtype == np.float32
    assert rows[:, 0].tolist() == [4, 1, 3, 2]


async def test_embed_passages_is_one_direct_call_on_the_passage_session(fake: Any) -> None:
    rows = await fake.embed_passages(["p1", "passage 2"])
    assert fake._passages.calls == [(["p1", "passage 2"], "passage")]
    assert fake._encoder.calls == []  # the live-query session is never used for indexing
    assert rows[:, 1].tolist() == [2.0, 2.0]


async def test_empty_inputs_give_empty_matrices(fake: Any) -> None:
    assert (await fake.embed_queries([])).shape == (0, 3)
    assert (await fake.embed_passages([])).shape == (0, 3)
    assert fake._encoder.calls == [] and fake._passages.calls == []


def test_ready_and_constructor_arguments(fake: Any, tmp_path: Path) -> None:
    assert fake.ready() is True
    assert fake._encoder.path == tmp_path / "use"
    assert fake._encoder.threads == 2
    assert fake._passages.threads == 2  # the default indexing pool
    assert fake.dim == 3


def test_build_embedder_names_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Earlier tests started serve.batch's queue (an asyncio task) inside the class's decorated
    # method; a real driver never calls it, so hide that queue while bind() pickles the class.
    enqueue = inspect.getclosurevars(Embedder._embed_query_batch).nonlocals["enqueue_request"]
    wrapper = inspect.getclosurevars(enqueue).nonlocals["lazy_batch_queue_wrapper"]
    monkeypatch.setattr(wrapper, "_queue", None)
    app = build_embedder("/nonexistent", model="use", threads=1)
    assert isinstance(app, serve.Application)
    options = EmbedderDeployment.options(name="x")  # type: ignore[attr-defined]
    assert options.max_ongoing_requests == 64
    assert options.ray_actor_options["num_cpus"] == 0.5


@pytest.mark.integration
async def test_real_model_matches_encoder(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = shared_models_dir(tmp_path_factory)
    path = ensure_models(root, names=("e5",))["e5"]
    deployment = Embedder(str(root), "e5", 1)
    direct = OnnxEncoder(path)
    queries = ["سياسة الاسترجاع", "red running shoes", "كم سعر الشحن؟"]
    served = await asyncio.gather(*(deployment.embed_queries([q]) for q in queries))
    np.testing.assert_allclose(np.vstack(served), direct.encode(queries, "query"), atol=2e-5)
    passages = await deployment.embed_passages(queries)
    assert passages.shape == (3, SPECS["e5"].dim)
    np.testing.assert_allclose(passages, direct.encode(queries, "passage"), atol=2e-5)
