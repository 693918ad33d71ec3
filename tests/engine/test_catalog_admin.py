"""Catalogue edits as a use case, on the real SQLite repositories (no HTTP, no Ray)."""

from __future__ import annotations

import pytest

from engine.domain.catalog import KnowledgeDoc, Product
from engine.services.catalog_admin import CatalogAdmin
from engine.services.indexing import INDEX_STATE, PENDING, VECTOR_CHUNKS
from engine.services.ports import DuplicateKey
from engine.services.repositories import Repositories

M = "m_admin"
LONG = "\n\n".join(
    f"Section {n}. " + "Returns are accepted within fourteen days. " * 12 for n in range(6)
)


class Nudges:
    def __init__(self) -> None:
        self.merchants: list[str] = []

    def reconcile(self, merchant_id: str) -> None:
        self.merchants.append(merchant_id)


@pytest.fixture
def repos(sqlite_repos: Repositories) -> Repositories:
    return sqlite_repos


async def test_product_edits_mark_the_record_pending_and_nudge_the_indexer(
    repos: Repositories,
) -> None:
    nudges = Nudges()
    admin = CatalogAdmin(repos, nudges)
    doc = await admin.add_product(M, Product(sku="S-1", title="Mug", price=20.0), 1.0)
    assert doc[INDEX_STATE] == PENDING and doc["created_at"] == doc["updated_at"] == 1.0
    with pytest.raises(DuplicateKey):
        await admin.add_product(M, Product(sku="S-1", title="Other"), 2.0)
    changed = await admin.change_product(M, "S-1", {"price": 25.0}, 3.0)
    assert changed is not None and changed["price"] == 25.0 and changed[INDEX_STATE] == PENDING
    assert changed["index_rev"] != doc["index_rev"]  # the indexer clears only what it indexed
    assert await admin.change_product(M, "missing", {"price": 1.0}, 4.0) is None
    assert nudges.merchants == [M, M]


async def test_a_removed_product_leaves_a_tombstone_for_its_vectors(repos: Repositories) -> None:
    admin = CatalogAdmin(repos, Nudges())
    await admin.add_product(M, Product(sku="S-2", title="Lamp"), 1.0)
    assert await admin.remove_product(M, "S-2")
    assert not await admin.remove_product(M, "S-2")
    [stone] = await repos.tombstones.batch(M, limit=10)
    assert stone["collection"] == "products" and "S-2" in stone["vector_ids"]
    assert await repos.products.get(M, f"{M}:S-2") is None


async def test_a_shorter_document_keeps_the_ids_its_longer_version_may_own(
    repos: Repositories,
) -> None:
    admin = CatalogAdmin(repos, Nudges())
    doc = await admin.add_document(M, KnowledgeDoc("returns", "Returns", LONG), 1.0)
    assert doc["chunks"] > 1
    short = await admin.change_document(M, "returns", {"body": "No returns on perfume."}, 2.0)
    assert short is not None and short["chunks"] == 1
    assert short[VECTOR_CHUNKS] == doc["chunks"]  # the indexer removes the stale windows
    assert await admin.remove_document(M, "returns")
    [stone] = await repos.tombstones.batch(M, limit=10)
    assert stone["collection"] == "knowledge" and len(stone["vector_ids"]) >= doc["chunks"]
    assert not await admin.remove_document(M, "returns")
