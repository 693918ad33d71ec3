"""Indexing: embed passages in batches and upsert them, reporting progress on the job record."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.catalog import KnowledgeDoc, Product, chunk_knowledge
from engine.ports import Embedder, VectorPoint, VectorStore
from engine.records import Records

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexItem:
    id: str
    text: str
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "payload": self.payload}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexItem:
        return cls(str(d["id"]), str(d["text"]), dict(d["payload"]))


def product_index_item(p: Product) -> IndexItem:
    """What the vector index keeps of a product: every writer (import, CRUD, eval) uses this."""
    return IndexItem(
        id=p.sku,
        text=p.embedding_text(),
        payload={
            "sku": p.sku,
            "title": p.title,
            "price": p.price,
            "currency": p.currency,
            "url": p.url,
            "in_stock": p.in_stock,
            "category": p.category,
            "kind": "product",
        },
    )


def knowledge_index_items(doc: KnowledgeDoc) -> list[IndexItem]:
    """A knowledge document as indexed chunks (ids ``{doc_id}#{n}``)."""
    return [
        IndexItem(
            id=c.id,
            text=c.embedding_text(),
            payload={
                "doc_id": c.doc_id,
                "title": c.title,
                "body": c.text,
                "language": doc.language,
                "kind": "knowledge",
            },
        )
        for c in chunk_knowledge(doc)
    ]


class IndexService:
    def __init__(
        self, embedder: Embedder, vectors: VectorStore, records: Records, batch_size: int = 32
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._records = records
        self._batch = batch_size

    async def index(
        self,
        job_id: str | None,
        merchant_id: str,
        collection: str,
        items: list[IndexItem],
        docs: list[dict[str, Any]] | None = None,
    ) -> int:
        """Store the records first (they are the source of truth), then index them."""
        done = 0
        try:
            if docs:
                await self._records.upsert_many(collection, merchant_id, docs)
                if job_id is not None:
                    await self._records.update_job(job_id, stored=len(docs))
            for start in range(0, len(items), self._batch):
                chunk = items[start : start + self._batch]
                vectors = await self._embedder.embed_passages([i.text for i in chunk])
                points = [
                    VectorPoint(
                        id=i.id,
                        vector=vectors[n].tolist(),
                        payload={**i.payload, "text": i.text, "merchant_id": merchant_id},
                    )
                    for n, i in enumerate(chunk)
                ]
                await self._vectors.upsert(collection, merchant_id, points)
                done += len(chunk)
                if job_id is not None:
                    await self._records.update_job(job_id, indexed=done)
        except Exception as exc:
            log.exception("indexing failed", extra={"job": job_id, "merchant": merchant_id})
            if job_id is not None:
                await self._records.update_job(
                    job_id, status="failed", failure=f"indexing failed: {type(exc).__name__}"
                )
            raise
        if job_id is not None:
            await self._records.update_job(job_id, status="done", indexed=done)
        return done
