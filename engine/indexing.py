"""Indexing: embed passages in batches and upsert them, reporting progress on the job record."""

from __future__ import annotations

import asyncio
import contextlib
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
    """A knowledge document as one vector per window of each chunk (ids ``{doc_id}#{n}.{m}``).

    Every window carries its chunk (``chunk_id``, ``body``) so a window hit is quotable without
    a second lookup; retrieval scores a chunk by its best window.
    """
    return [
        IndexItem(
            id=f"{c.id}.{m}",
            text=text,
            payload={
                "doc_id": c.doc_id,
                "chunk_id": c.id,
                "title": c.title,
                "body": c.text,
                "language": doc.language,
                "kind": "knowledge",
            },
        )
        for c in chunk_knowledge(doc)
        for m, text in enumerate(c.window_texts())
    ]


class IndexService:
    def __init__(
        self, embedder: Embedder, vectors: VectorStore, records: Records, batch_size: int = 512
    ) -> None:
        # Texts per embed call. Bigger calls amortise the Serve hop and let the encoder sort
        # more texts by length (less padding): bench/index.py --engine, 10,000 products:
        # 128 -> 200/s, 256 -> 212-218/s, 512 -> 230/s. Progress is reported per call.
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
        """Store the records (the source of truth) and index them, as a pipeline.

        Three kinds of work live in three processes (document store, Serve embedder, vector
        store), so they overlap: the records are written while the first batches embed, and
        batch k's vectors are upserted while batch k+1 embeds. Order still holds where it
        matters: no vector is written before every record of the job is stored, and vector
        upserts run one at a time in batch order. Measured: bench/index.py --engine.
        """
        done = 0
        stored: asyncio.Task[None] | None = None
        upsert: asyncio.Task[None] | None = None
        try:
            if docs:
                stored = asyncio.create_task(self._store(job_id, collection, merchant_id, docs))
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
                if stored is not None:
                    await stored
                if upsert is not None:
                    await upsert
                upsert = asyncio.create_task(
                    self._upsert(job_id, collection, merchant_id, points, done + len(chunk))
                )
                done += len(chunk)
            if stored is not None:
                await stored
            if upsert is not None:
                await upsert
        except Exception as exc:
            # Let started writes finish: records already sent are kept (they are the truth and
            # a re-import is idempotent), and no task outlives the job unobserved.
            for task in (stored, upsert):
                if task is not None:
                    with contextlib.suppress(Exception):
                        await task
            log.exception("indexing failed", extra={"job": job_id, "merchant": merchant_id})
            if job_id is not None:
                await self._records.update_job(
                    job_id, status="failed", failure=f"indexing failed: {type(exc).__name__}"
                )
            raise
        if job_id is not None:
            await self._records.update_job(job_id, status="done", indexed=done)
        return done

    async def _store(
        self, job_id: str | None, collection: str, merchant_id: str, docs: list[dict[str, Any]]
    ) -> None:
        await self._records.upsert_many(collection, merchant_id, docs)
        if job_id is not None:
            await self._records.update_job(job_id, stored=len(docs))

    async def _upsert(
        self,
        job_id: str | None,
        collection: str,
        merchant_id: str,
        points: list[VectorPoint],
        indexed: int,
    ) -> None:
        await self._vectors.upsert(collection, merchant_id, points)
        if job_id is not None:
            await self._records.update_job(job_id, indexed=indexed)
