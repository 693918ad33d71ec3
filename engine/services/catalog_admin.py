"""A merchant's own edits of the catalogue: products and knowledge documents, one at a time.

Every write is record-as-outbox: the change and "this version is not indexed yet" land in the
same record write (``pending_fields``), so a crash between the write and the indexer loses no
re-index; the nudge that follows only asks the indexer to look now. A delete writes its
tombstone first (the vectors the record may own), then deletes, so no order of crashes leaves
a deleted record's vectors behind. Bulk imports take the job path (``engine.http.routes.imports``).
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.domain import catalog
from engine.domain.catalog import KNOWLEDGE, PRODUCTS
from engine.services.indexing import VECTOR_CHUNKS, pending_fields, tombstone
from engine.services.ports import Document
from engine.services.repositories import Repositories

# Imports never stored a chunk count: a delete then removes this many positional chunk ids.
UNKNOWN_CHUNKS = 200


class IndexNudge(Protocol):
    def reconcile(self, merchant_id: str) -> Any:
        """Index the merchant's pending records now rather than at the next sweep."""
        ...


class CatalogAdmin:
    def __init__(self, repos: Repositories, indexer: IndexNudge) -> None:
        self._repos = repos
        self._indexer = indexer

    # -- products ---------------------------------------------------------------------------
    async def add_product(self, merchant_id: str, product: catalog.Product, now: float) -> Document:
        """Raises ``DuplicateKey`` when the merchant already has the SKU."""
        doc = {**product.to_doc(merchant_id), **pending_fields(), "created_at": now}
        doc["updated_at"] = now
        await self._repos.products.create(doc)
        self._indexer.reconcile(merchant_id)
        return doc

    async def change_product(
        self, merchant_id: str, sku: str, changes: Document, now: float
    ) -> Document | None:
        record_id = catalog.product_doc_id(merchant_id, sku)
        sets = {**changes, **pending_fields(), "updated_at": now}
        doc = await self._repos.products.update(merchant_id, record_id, sets)
        if doc is not None:
            self._indexer.reconcile(merchant_id)
        return doc

    async def remove_product(self, merchant_id: str, sku: str) -> bool:
        doc = await self._repos.products.get(merchant_id, catalog.product_doc_id(merchant_id, sku))
        return doc is not None and await self._remove(
            PRODUCTS, doc, catalog.product_vector_ids(sku)
        )

    # -- knowledge --------------------------------------------------------------------------
    async def add_document(
        self, merchant_id: str, document: catalog.KnowledgeDoc, now: float
    ) -> Document:
        """Raises ``DuplicateKey`` when the merchant already has the document id."""
        doc = {
            **document.to_doc(merchant_id),
            "created_at": now,
            "updated_at": now,
            "chunks": len(catalog.chunk_knowledge(document)),
            **pending_fields(),
        }
        await self._repos.knowledge.create(doc)
        self._indexer.reconcile(merchant_id)
        return doc

    async def change_document(
        self, merchant_id: str, doc_id: str, changes: Document, now: float
    ) -> Document | None:
        record_id = f"{merchant_id}:{doc_id}"
        before = await self._repos.knowledge.get(merchant_id, record_id)
        if before is None:
            return None
        merged = {**before, **changes}
        count = len(
            catalog.chunk_knowledge(
                catalog.KnowledgeDoc(
                    str(merged["doc_id"]), str(merged["title"]), str(merged["body"])
                )
            )
        )
        sets = {
            **changes,
            **pending_fields(),
            "chunks": count,
            # Every chunk id an indexed version may own, so the indexer can remove the ones a
            # shorter version leaves behind (set in this same write: nothing to lose on a crash).
            VECTOR_CHUNKS: max(count, int(before.get(VECTOR_CHUNKS) or before.get("chunks") or 0)),
            "updated_at": now,
        }
        doc = await self._repos.knowledge.update(merchant_id, record_id, sets)
        if doc is not None:
            self._indexer.reconcile(merchant_id)
        return doc

    async def remove_document(self, merchant_id: str, doc_id: str) -> bool:
        doc = await self._repos.knowledge.get(merchant_id, f"{merchant_id}:{doc_id}")
        if doc is None:
            return False
        count = int(doc.get(VECTOR_CHUNKS) or doc.get("chunks") or UNKNOWN_CHUNKS)
        ids = catalog.knowledge_vector_ids(str(doc["doc_id"]), count)
        return await self._remove(KNOWLEDGE, doc, ids)

    async def _remove(self, collection: str, record: Document, vector_ids: list[str]) -> bool:
        merchant_id = str(record["merchant_id"])
        await self._repos.tombstones.add(tombstone(collection, record, vector_ids))
        deleted = await self._repos.catalog(collection).delete(merchant_id, str(record["_id"]))
        self._indexer.reconcile(merchant_id)
        return deleted
