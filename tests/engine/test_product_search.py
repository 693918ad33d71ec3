"""Products are ranked by what they say: a description vector next to the title vector, the
product fusion weights, in-stock first among equals; the graded product set is committed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapters.records import PRODUCTS, Records
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.adapters.vectors import EdgeVectorStore
from engine.domain.catalog import Product, product_vector_ids
from engine.domain.ranking import PRODUCT_WEIGHTS, product_rank
from engine.evaluation import product_set
from engine.evaluation.retrieval import PRODUCT_SET, load_products
from engine.services.indexing import IndexReconciler, IndexService, product_index_items, tombstone
from engine.services.ports import VectorHit
from engine.services.retrieval import best_vector_per_product

DIM = 8


def test_the_committed_product_set_is_what_the_generator_writes(tmp_path: Path) -> None:
    counts = product_set.generate(tmp_path)
    for name in ("products.jsonl", "queries.jsonl"):
        assert (tmp_path / name).read_bytes() == (PRODUCT_SET / name).read_bytes(), name
    assert counts["products"] >= 500 and counts["queries"] >= 200
    assert min(counts["train"], counts["test"]) >= 100


def test_the_product_set_covers_stores_styles_and_real_descriptions() -> None:
    rows = [json.loads(line) for line in (PRODUCT_SET / "products.jsonl").open(encoding="utf-8")]
    queries = [json.loads(line) for line in (PRODUCT_SET / "queries.jsonl").open(encoding="utf-8")]
    for row in rows:
        sentences = [s for s in re.split(r"(?<=[.!?؟])\s+", row["description"]) if s]
        assert 2 <= len(sentences) <= 5, row["sku"]
    assert {k.store for k in product_set.KINDS} == {
        "fashion", "electronics", "perfume", "groceries", "home"
    }  # fmt: skip
    assert sum(bool(re.search("[\u0600-\u06ff]", r["title"])) for r in rows) > len(rows) // 3
    for split in ("train", "test"):
        styles = {q["style"] for q in queries if q["split"] == split}
        assert styles == set(product_set.STYLES), split
    by_sku = {r["sku"]: r for r in rows}
    for q in queries:
        grades = q["grades"]
        assert set(grades.values()) <= {1, 2, 3} and 3 in grades.values(), q["id"]
        # 3 and 2 are the asked type; 1 is the same aisle (category), never the asked type.
        asked = [s for s, g in grades.items() if g >= 2]
        related = [s for s, g in grades.items() if g == 1]
        cats = {by_sku[s]["category"] for s in asked}
        assert len(cats) == 1
        assert all(by_sku[s]["category"] in cats for s in related)


def test_a_product_owns_a_deferred_description_vector() -> None:
    p = Product(sku="S1", title="Trail Runner", description="Waterproof upper. Grips wet rock.")
    first, second = product_index_items(p)
    assert (first.id, first.deferred) == ("S1", False)
    assert (second.id, second.deferred) == ("S1#d", True)
    assert "Waterproof upper" in second.text and "Waterproof" not in first.text
    assert [i.id for i in product_index_items(Product(sku="S2", title="Mug"))] == ["S2"]
    assert product_vector_ids("S1") == ["S1", "S1#d"]


def test_a_product_scores_by_its_better_vector() -> None:
    hits = [
        VectorHit("A#d", 0.9, {"sku": "A", "text": "long"}),
        VectorHit("B", 0.8, {"sku": "B", "text": "b"}),
        VectorHit("A", 0.7, {"sku": "A", "text": "title"}),
    ]
    dense, payloads = best_vector_per_product(hits)
    assert dense == {"A": 0.9, "B": 0.8}
    assert payloads["A"]["text"] == "title"


def test_in_stock_comes_first_among_equals_only() -> None:
    same = {"X": 0.8, "Y": 0.8, "Z": 0.2}
    signals = {"dense": same, "bm25": {}, "cov": dict(same), "stock": {"X": 0.0, "Y": 1.0}}
    assert [i for i, _ in product_rank(signals, PRODUCT_WEIGHTS)] == ["Y", "X", "Z"]
    better = {"X": 0.9, "Y": 0.8, "Z": 0.2}
    signals = {"dense": better, "bm25": {}, "cov": dict(better), "stock": {"X": 0.0, "Y": 1.0}}
    assert product_rank(signals, PRODUCT_WEIGHTS)[0][0] == "X"


class JobWatchingEmbedder:
    """Unit vectors; notes the job's status each time a batch is embedded."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.job_id = ""
        self.seen: list[tuple[int, str]] = []

    async def embed_queries(self, texts: list[str]) -> Any:
        return await self.embed_passages(texts)

    async def embed_passages(self, texts: list[str]) -> Any:
        job = await self.records.job("m1", self.job_id)
        self.seen.append((len(texts), job["status"] if job else "?"))
        rows = np.ones((len(texts), DIM), dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def test_an_import_is_done_before_its_description_vectors(tmp_path: Path) -> None:
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    vectors = EdgeVectorStore(tmp_path / "vectors")
    await vectors.ensure_collection(PRODUCTS, DIM)
    records = Records(store, SecretBox(load_or_create_key("", tmp_path)))
    embedder = JobWatchingEmbedder(records)
    service = IndexService(embedder, vectors, records, batch_size=4)
    products = [
        Product(sku=f"P{n}", title=f"Mug {n}", description=f"A mug that holds {n} cups. Glazed.")
        for n in range(6)
    ]
    embedder.job_id = await records.create_job("m1", PRODUCTS, len(products), [])
    items = [i for p in products for i in product_index_items(p)]
    done = await service.index(
        embedder.job_id, "m1", PRODUCTS, items, [p.to_doc("m1") for p in products]
    )
    assert done == 6
    # Title vectors while running (two batches of 4 + 2), description vectors after done.
    assert embedder.seen == [(4, "running"), (2, "running"), (4, "done"), (2, "done")]
    job = await records.job("m1", embedder.job_id)
    assert job is not None and job["progress"]["indexed"] == 6
    assert job["progress"]["described"] == 6
    assert await vectors.count(PRODUCTS, "m1") == 12
    # A deleted product takes both of its vectors with it.
    reconciler = IndexReconciler(store, service, vectors)
    doc = await store.products.by_sku("m1", "P0")
    assert doc is not None
    await store.tombstones.add(tombstone(PRODUCTS, doc, product_vector_ids("P0")))
    await store.products.delete("m1", doc["_id"])
    await reconciler.run_once()
    assert await vectors.count(PRODUCTS, "m1") == 10
    await vectors.close()
    await store.close()


def test_the_split_loader_keeps_splits_apart() -> None:
    train, test = load_products(split="train"), load_products(split="test")
    assert not set(train.query_ids) & set(test.query_ids)
    assert len(train.products) == len(test.products) >= 500


async def test_an_edit_that_drops_the_description_drops_its_vector(tmp_path: Path) -> None:
    from engine.services.indexing import pending_fields

    store = sqlite_repositories(tmp_path / "records.sqlite3")
    vectors = EdgeVectorStore(tmp_path / "vectors")
    await vectors.ensure_collection(PRODUCTS, DIM)
    records = Records(store, SecretBox(load_or_create_key("", tmp_path)))
    embedder = JobWatchingEmbedder(records)
    reconciler = IndexReconciler(store, IndexService(embedder, vectors, records), vectors)
    doc = Product(sku="A", title="Mug", description="Holds two cups. Glazed.").to_doc("m1")
    await store.products.create({**doc, **pending_fields()})
    await reconciler.run_once()
    assert await vectors.count(PRODUCTS, "m1") == 2
    await store.products.update("m1", "m1:A", {"description": "", **pending_fields()})
    await reconciler.run_once()
    hits = await vectors.search(PRODUCTS, "m1", [1.0] * DIM, limit=10)
    assert [h.id for h in hits] == ["A"]
    await vectors.close()
    await store.close()
