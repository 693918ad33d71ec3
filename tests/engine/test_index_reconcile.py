"""Records are the truth and vectors follow them: a write marks the record pending in the same
update, and the reconciler indexes exactly the pending versions (no dual write to lose)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapters.records import KNOWLEDGE, PRODUCTS, Records
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.adapters.vectors import EdgeVectorStore
from engine.domain.catalog import KnowledgeDoc, Product
from engine.services.indexing import (
    INDEX_STATE,
    INDEXED,
    PENDING,
    VECTOR_CHUNKS,
    IndexReconciler,
    IndexService,
    pending_fields,
    tombstone,
)
from engine.services.repositories import Repositories

DIM = 8


class CountingEmbedder:
    """Deterministic unit vectors; records which texts were embedded, and can stall once."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.before_return: Any = None

    async def embed_queries(self, texts: list[str]) -> Any:
        return await self.embed_passages(texts)

    async def embed_passages(self, texts: list[str]) -> Any:
        self.texts += texts
        if self.before_return is not None:
            hook, self.before_return = self.before_return, None
            await hook()
        rows = np.ones((len(texts), DIM), dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def _setup(tmp_path: Path) -> tuple[Repositories, EdgeVectorStore, Any, Any]:
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    vectors = EdgeVectorStore(tmp_path / "vectors")
    for name in (PRODUCTS, KNOWLEDGE):
        await vectors.ensure_collection(name, DIM)
    embedder = CountingEmbedder()
    records = Records(store, SecretBox(load_or_create_key("", tmp_path)))
    reconciler = IndexReconciler(store, IndexService(embedder, vectors, records), vectors)
    return store, vectors, embedder, reconciler


def _product(sku: str, title: str) -> dict[str, Any]:
    doc = Product(sku=sku, title=title, price=10.0).to_doc("m1")
    return {**doc, **pending_fields(), "updated_at": time.time()}


async def test_pending_records_are_indexed_once_and_marked(tmp_path: Path) -> None:
    store, vectors, embedder, reconciler = await _setup(tmp_path)
    products = store.products
    await products.create(_product("A", "Red mug"))
    await products.create({**Product(sku="B", title="Old").to_doc("m1")})  # no marker
    assert await reconciler.run_once() == 1
    assert await vectors.count(PRODUCTS, "m1") == 1
    found = await products.by_sku("m1", "A")
    assert found is not None and found[INDEX_STATE] == INDEXED
    assert await reconciler.run_once() == 0  # nothing pending: no model call
    assert embedder.texts == ["Red mug"]


async def test_an_edit_made_while_indexing_stays_pending(tmp_path: Path) -> None:
    store, _, embedder, reconciler = await _setup(tmp_path)
    products = store.products
    await products.create(_product("A", "Red mug"))

    async def edit_meanwhile() -> None:
        await products.update("m1", "m1:A", {"title": "Blue mug", **pending_fields()})

    embedder.before_return = edit_meanwhile
    await reconciler.run_once()
    # The first pass indexed "Red mug"; the newer revision was picked up in the same run.
    assert embedder.texts == ["Red mug", "Blue mug"]
    found = await products.by_sku("m1", "A")
    assert found is not None and found[INDEX_STATE] == INDEXED


async def test_a_shorter_knowledge_version_leaves_no_stale_windows(tmp_path: Path) -> None:
    store, vectors, _, reconciler = await _setup(tmp_path)
    knowledge = store.knowledge
    long_body = "\n\n".join(["Returns are accepted within 14 days of delivery. " * 12] * 4)
    doc = {**KnowledgeDoc("returns", "Returns", long_body).to_doc("m1"), **pending_fields()}
    await knowledge.create(doc)
    await reconciler.run_once()
    many = await vectors.count(KNOWLEDGE, "m1")
    stored = await knowledge.get("m1", "m1:returns")
    assert stored is not None and stored[VECTOR_CHUNKS] >= 2 and many > 2
    await knowledge.update(
        "m1", "m1:returns", {"body": "Returns within 14 days.", **pending_fields()}
    )
    await reconciler.run_once()
    assert await vectors.count(KNOWLEDGE, "m1") == 1
    stored = await knowledge.get("m1", "m1:returns")
    assert stored is not None and stored[INDEX_STATE] == INDEXED and stored[VECTOR_CHUNKS] == 1
    assert await knowledge.pending(None, after_id=None, limit=100) == []
    assert stored[INDEX_STATE] != PENDING


async def test_tombstones_remove_the_vectors_of_deleted_records_only(tmp_path: Path) -> None:
    store, vectors, _, reconciler = await _setup(tmp_path)
    products = store.products
    graves = store.tombstones
    for sku in ("A", "B"):
        await products.create(_product(sku, f"Mug {sku}"))
    await reconciler.run_once()
    assert await vectors.count(PRODUCTS, "m1") == 2
    a = await products.by_sku("m1", "A")
    b = await products.by_sku("m1", "B")
    assert a is not None and b is not None
    # A: tombstone + delete (the API's order). B: the process died between the two.
    await graves.add(tombstone(PRODUCTS, a, ["A"]))
    await products.delete("m1", a["_id"])
    await graves.add(tombstone(PRODUCTS, b, ["B"]))
    await reconciler.run_once()
    hits = await vectors.search(PRODUCTS, "m1", [1.0] * DIM, limit=10)
    assert [h.id for h in hits] == ["B"]  # B still exists, so its vector stays
    assert await graves.batch(None, limit=10) == []
