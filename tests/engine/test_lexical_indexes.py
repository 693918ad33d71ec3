"""The per-merchant BM25 cache: fresh at once for small catalogues, never blocking for big ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine.adapters.repositories import sqlite_repositories
from engine.services import retrieval
from engine.services.repositories import Repositories
from engine.services.retrieval import LexicalIndexes


async def _add(store: Repositories, sku: str, title: str) -> None:
    await store.products.create(
        {
            "_id": f"m1:{sku}",
            "merchant_id": "m1",
            "sku": sku,
            "title": title,
            "price": 10.0,
            "updated_at": time.time(),
        }
    )


async def test_a_small_catalogue_change_is_seen_by_the_next_question(tmp_path: Path) -> None:
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    await _add(store, "A", "red mug")
    indexes = LexicalIndexes(store, check_every_s=0.0)
    assert set((await indexes.get("m1")).top_products("mug", 5)) == {"A"}
    await _add(store, "B", "blue mug")
    assert set((await indexes.get("m1")).top_products("mug", 5)) == {"A", "B"}


async def test_a_slow_rebuild_runs_in_the_background_while_the_old_index_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(retrieval, "INLINE_BUILD_S", 0.0)  # every build counts as slow
    monkeypatch.setattr(retrieval, "REBUILD_COOLDOWN_FACTOR", 0.0)
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    await _add(store, "A", "red mug")
    indexes = LexicalIndexes(store, check_every_s=0.0)
    first = await indexes.get("m1")  # nothing to serve yet: the first build is awaited
    await _add(store, "B", "blue mug")
    stale = await indexes.get("m1")
    assert stale is first and set(stale.top_products("mug", 5)) == {"A"}
    for _ in range(100):  # the background rebuild lands without anyone waiting for it
        await asyncio.sleep(0.01)
        fresh = await indexes.get("m1")
        if fresh is not first:
            break
    assert set(fresh.top_products("mug", 5)) == {"A", "B"}


def test_top_k_matches_a_full_sort() -> None:
    titles = [f"mug {'mug ' * (n % 7)}item{n}" for n in range(500)]
    index = retrieval.Bm25Index([str(n) for n in range(500)], titles)
    top = retrieval._top(index, "mug", 20)
    scores = index.scores("mug")
    expected = sorted(range(500), key=lambda n: (-scores[n], n))[:20]
    assert [float(v) for v in top.values()] == [float(scores[n]) for n in expected]
