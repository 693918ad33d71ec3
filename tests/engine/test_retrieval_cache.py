"""Repeated questions are answered from the retrieval-results cache, and every change of the
merchant's catalogue an answer could see reaches the next question (records are the truth)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import pytest

from engine.adapters.records import KNOWLEDGE, PRODUCTS, Records
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.adapters.vectors import EdgeVectorStore
from engine.config import Settings
from engine.domain.catalog import KnowledgeDoc, Product
from engine.domain.retrieval import Filters, RetrievalResult
from engine.services.catalog_admin import CatalogAdmin
from engine.services.indexing import IndexReconciler, IndexService
from engine.services.ports import SearchOptions, VectorHit
from engine.services.repositories import Repositories
from engine.services.retrieval import LexicalIndexes, ResultCache, Retriever

DIM = 64


class WordHashEmbedder:
    """Bag of words hashed into DIM buckets: texts sharing words are close, deterministically."""

    async def embed_queries(self, texts: list[str]) -> Any:
        return await self.embed_passages(texts)

    async def embed_passages(self, texts: list[str]) -> Any:
        rows = np.full((len(texts), DIM), 0.01, dtype=np.float32)
        for r, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                rows[r, hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % DIM] += 1.0
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class CountingVectors(EdgeVectorStore):
    """The real edge store, counting the searches that reach it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.searches = 0

    async def search(
        self, collection: str, merchant_id: str, vector: list[float], **kw: Unpack[SearchOptions]
    ) -> list[VectorHit]:
        self.searches += 1
        return await super().search(collection, merchant_id, vector, **kw)


class NoNudge:
    """The test runs the reconciler itself, exactly when it wants the vectors to catch up."""

    def reconcile(self, merchant_id: str) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Shop:
    store: Repositories
    vectors: CountingVectors
    admin: CatalogAdmin
    reconciler: IndexReconciler
    cache: ResultCache
    clock: Clock
    retriever: Retriever

    async def ask(self, query: str, merchant: str = "m1", **kw: Any) -> RetrievalResult:
        return await self.retriever.retrieve(merchant, query, **kw)

    async def add(self, sku: str, title: str, price: float, merchant: str = "m1") -> None:
        product = Product(sku=sku, title=title, price=price, currency="SAR")
        await self.admin.add_product(merchant, product, now=self.clock.now)
        self.clock.now += 1


def _skus(result: RetrievalResult) -> list[str]:
    return [p.card.sku for p in result.products]


async def _shop(tmp_path: Path, *, entries: int = 64, ttl_s: float = 300.0) -> Shop:
    store = sqlite_repositories(tmp_path / "records.sqlite3")
    vectors = CountingVectors(tmp_path / "vectors")
    for name in (PRODUCTS, KNOWLEDGE):
        await vectors.ensure_collection(name, DIM)
    embedder = WordHashEmbedder()
    records = Records(store, SecretBox(load_or_create_key("", tmp_path)))
    reconciler = IndexReconciler(store, IndexService(embedder, vectors, records), vectors)
    clock = Clock()
    cache = ResultCache(entries, ttl_s, clock=clock)
    # Checked on every question: the test is about the results cache, not the lexicon's cadence.
    retriever = Retriever(
        embedder, vectors, LexicalIndexes(store, check_every_s=0.0), results=cache
    )
    shop = Shop(store, vectors, CatalogAdmin(store, NoNudge()), reconciler, cache, clock, retriever)
    await shop.add("MUG", "Red ceramic mug", 30.0)
    await shop.add("KETTLE", "Steel kettle", 120.0)
    await shop.add("MUG", "Blue mug", 25.0, merchant="m2")
    await shop.admin.add_document(
        "m1", KnowledgeDoc("ship", "Shipping", "Shipping takes three days."), now=clock.now
    )
    await reconciler.run_once()
    return shop


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    s = await _shop(tmp_path)
    yield s
    await s.vectors.close()
    await s.store.close()


async def test_a_repeated_question_does_not_search_the_vectors_again(shop: Shop) -> None:
    first = await shop.ask("red mug")
    searched = shop.vectors.searches
    assert searched == 2 and _skus(first)[0] == "MUG"
    again = await shop.ask("  red   mug ")  # the same question as the embedder sees it
    assert shop.vectors.searches == searched
    assert again.products == first.products and again.knowledge == first.knowledge
    assert shop.retriever.cache_counts == {"l1_hit": 1, "l1_miss": 1}


async def test_a_caller_cannot_change_a_cached_answer(shop: Shop) -> None:
    first = await shop.ask("red mug")
    first.products.clear()
    first.knowledge.clear()
    again = await shop.ask("red mug")
    assert _skus(again)[0] == "MUG" and again.knowledge
    again.products[0].attributes["colour"] = "green"
    assert "colour" not in (await shop.ask("red mug")).products[0].attributes


async def test_a_price_change_is_seen_by_the_next_question(shop: Shop) -> None:
    assert (await shop.ask("red mug")).products[0].card.price == 30.0
    await shop.admin.change_product("m1", "MUG", {"price": 35.0}, now=shop.clock.now)
    # Not indexed yet: the records are the truth, the next question shows the new price.
    assert (await shop.ask("red mug")).products[0].card.price == 35.0
    await shop.reconciler.run_once()
    assert (await shop.ask("red mug")).products[0].card.price == 35.0


async def test_a_new_product_is_seen_once_indexed_even_if_asked_before(shop: Shop) -> None:
    assert "TEAPOT" not in _skus(await shop.ask("ceramic teapot"))
    await shop.add("TEAPOT", "Ceramic teapot", 80.0)
    await shop.ask("ceramic teapot")  # asked while the product waits for the indexer
    await shop.reconciler.run_once()
    result = await shop.ask("ceramic teapot")
    assert _skus(result)[0] == "TEAPOT"
    assert result.products[0].dense > 0.5  # found by its vector too, not only lexically


async def test_a_deleted_product_disappears(shop: Shop) -> None:
    assert "KETTLE" in _skus(await shop.ask("steel kettle"))
    await shop.admin.remove_product("m1", "KETTLE")
    await shop.reconciler.run_once()
    assert "KETTLE" not in _skus(await shop.ask("steel kettle"))


async def test_a_knowledge_edit_is_seen_by_the_next_question(shop: Shop) -> None:
    before = await shop.ask("how long does shipping take")
    assert "three days" in before.knowledge[0].text
    shop.clock.now += 1
    await shop.admin.change_document(
        "m1", "ship", {"body": "Shipping takes five days."}, now=shop.clock.now
    )
    await shop.reconciler.run_once()
    after = await shop.ask("how long does shipping take")
    assert "five days" in after.knowledge[0].text


async def test_an_edit_that_keeps_the_newest_timestamp_is_seen_once_indexed(shop: Shop) -> None:
    # A host whose clock is behind writes an older ``updated_at``: counts and the newest
    # timestamp stay the same, only the pending state tells the edit apart.
    shop.clock.now += 10
    returns = KnowledgeDoc("returns", "Returns", "Returns are free within 14 days.")
    await shop.admin.add_document("m1", returns, now=shop.clock.now)
    await shop.reconciler.run_once()
    assert "three days" in (await shop.ask("shipping")).knowledge[0].text
    await shop.admin.change_document(
        "m1", "ship", {"body": "Shipping takes five days."}, now=shop.clock.now - 5
    )
    await shop.ask("shipping")  # the edit waits for the indexer
    await shop.reconciler.run_once()
    assert "five days" in (await shop.ask("shipping")).knowledge[0].text


async def test_another_merchants_change_does_not_evict(shop: Shop) -> None:
    await shop.ask("red mug")
    await shop.add("CUP", "Paper cup", 2.0, merchant="m2")
    await shop.reconciler.run_once()
    searched = shop.vectors.searches
    await shop.ask("red mug")
    assert shop.vectors.searches == searched


async def test_filters_and_limits_are_part_of_the_key(shop: Shop) -> None:
    assert "MUG" in _skus(await shop.ask("mug or kettle"))
    cheap = await shop.ask("mug or kettle", filters=Filters(min_price=100.0))
    assert _skus(cheap) == ["KETTLE"]
    assert len((await shop.ask("mug or kettle", product_limit=1)).products) == 1
    assert not (await shop.ask("mug or kettle", knowledge_limit=0)).knowledge
    assert shop.retriever.cache_counts["l1_hit"] == 0
    assert (await shop.ask("red mug", merchant="m2")).products[0].card.price == 25.0


async def test_the_cache_is_a_bounded_lru(tmp_path: Path) -> None:
    shop = await _shop(tmp_path, entries=2)
    await shop.ask("red mug")
    await shop.ask("steel kettle")
    await shop.ask("red mug")  # most recent now: "steel kettle" goes first
    await shop.ask("shipping")
    assert len(shop.cache) == 2
    searched = shop.vectors.searches
    await shop.ask("red mug")
    assert shop.vectors.searches == searched
    await shop.ask("steel kettle")
    assert shop.vectors.searches == searched + 2
    await shop.vectors.close()
    await shop.store.close()


async def test_an_entry_expires_after_its_ttl(tmp_path: Path) -> None:
    shop = await _shop(tmp_path, ttl_s=60.0)
    await shop.ask("red mug")
    shop.clock.now += 59
    searched = shop.vectors.searches
    await shop.ask("red mug")
    assert shop.vectors.searches == searched
    shop.clock.now += 2
    await shop.ask("red mug")
    assert shop.vectors.searches == searched + 2
    await shop.vectors.close()
    await shop.store.close()


@pytest.mark.parametrize(("entries", "ttl_s"), [(0, 300.0), (64, 0.0)])
async def test_zero_turns_the_cache_off(tmp_path: Path, entries: int, ttl_s: float) -> None:
    shop = await _shop(tmp_path, entries=entries, ttl_s=ttl_s)
    await shop.ask("red mug")
    await shop.ask("red mug")
    assert shop.vectors.searches == 4 and shop.retriever.cache_counts == {}
    await shop.vectors.close()
    await shop.store.close()


def test_settings_read_the_cache_size_and_ttl() -> None:
    s = Settings.from_env(
        {"KALEEM_RETRIEVAL_CACHE_ENTRIES": "0", "KALEEM_RETRIEVAL_CACHE_TTL_S": "12.5"}
    )
    assert (s.retrieval_cache_entries, s.retrieval_cache_ttl_s) == (0, 12.5)
    default = Settings.from_env({})
    assert default.retrieval_cache_entries > 0 and default.retrieval_cache_ttl_s > 0
