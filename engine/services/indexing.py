"""Indexing: embed passages in batches and upsert them, reporting progress on the job record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from engine.domain.catalog import (
    DESCRIPTION_VECTOR,
    KNOWLEDGE,
    PRODUCTS,
    KnowledgeDoc,
    Product,
    chunk_knowledge,
    knowledge_vector_ids,
    product_vector_ids,
)
from engine.services.ports import Embedder, VectorPoint, VectorStore
from engine.services.repositories import RecordKeeping, Repositories

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IndexItem:
    """One vector to write. ``deferred`` items are embedded after the rest of their job has
    been reported done (a product's description vector: quality that may follow a moment
    after the product is searchable)."""

    id: str
    text: str
    payload: dict[str, Any]
    deferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "text": self.text, "payload": self.payload}
        return {**d, "deferred": self.deferred}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexItem:
        return cls(str(d["id"]), str(d["text"]), dict(d["payload"]), bool(d.get("deferred")))


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


def product_index_items(p: Product) -> list[IndexItem]:
    """Every vector a product owns: the title vector (:func:`product_index_item`) and, when it
    has a description, a deferred description vector ``{sku}#d`` with the same payload.

    Retrieval scores a product by its best vector. Measured on the product relevance set
    (`kaleem eval retrieval --kind products`, test split, nDCG@10): title vector only: hybrid
    0.621, dense 0.544; title + description vectors: hybrid 0.626, dense 0.574.
    """
    first = product_index_item(p)
    text = p.description_embedding_text()
    if not text:
        return [first]
    return [first, IndexItem(f"{p.sku}{DESCRIPTION_VECTOR}", text, first.payload, deferred=True)]


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
        self,
        embedder: Embedder,
        vectors: VectorStore,
        records: RecordKeeping,
        batch_size: int = 512,
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
        now = [i for i in items if not i.deferred]
        later = [i for i in items if i.deferred]
        stale: list[str] = []
        if collection == KNOWLEDGE and docs:
            docs, stale = await self._knowledge_shrinks(merchant_id, items, docs)
        done = await self._pipeline(job_id, merchant_id, collection, now, docs, "indexed")
        if stale:
            # After the new windows are written: a question never finds a document windowless.
            await self._vectors.delete(collection, merchant_id, stale)
        if job_id is not None:
            await self._records.update_job(job_id, status="done", indexed=done)
        if later:
            # The job's records are stored and searchable; these only sharpen the dense signal.
            # A failure here is logged, not a failed job: the records are pending nothing.
            try:
                await self._pipeline(job_id, merchant_id, collection, later, None, "described")
            except Exception:
                log.exception("description vectors failed", extra={"merchant": merchant_id})
        return done

    async def _knowledge_shrinks(
        self, merchant_id: str, items: list[IndexItem], docs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Re-imported documents that lost chunks: the window ids their old versions own and
        the new versions do not, and the docs marked with the most chunks ever indexed.

        The mark is stored with the records before any vector is deleted, so a crash between
        the two still leaves a record naming every window it may own (the next shrink or a
        delete removes them); it is a maximum and never needs lowering.
        """
        chunks: dict[str, set[str]] = {}
        current: set[str] = set()
        for item in items:
            chunks.setdefault(str(item.payload.get("doc_id")), set()).add(
                str(item.payload.get("chunk_id"))
            )
            current.add(item.id)
        repo = self._records.repos.knowledge
        before: list[dict[str, Any] | None] = []
        for start in range(0, len(docs), SHRINK_LOOKUPS):
            wave = docs[start : start + SHRINK_LOOKUPS]
            before += await asyncio.gather(*(repo.get(merchant_id, str(d["_id"])) for d in wave))
        marked: list[dict[str, Any]] = []
        stale: list[str] = []
        for doc, old in zip(docs, before, strict=True):
            doc_id = str(doc["doc_id"])
            new = len(chunks.get(doc_id, ()))
            owned = 0
            if old is not None:
                title, body = str(old.get("title") or ""), str(old.get("body") or "")
                previous = KnowledgeDoc(doc_id, title, body)
                owned = max(
                    len(chunk_knowledge(previous)),
                    int(old.get(VECTOR_CHUNKS) or old.get("chunks") or 0),
                )
                stale += [v for v in knowledge_vector_ids(doc_id, owned) if v not in current]
            marked.append({**doc, VECTOR_CHUNKS: max(new, owned)})
        return marked, stale

    async def _pipeline(
        self,
        job_id: str | None,
        merchant_id: str,
        collection: str,
        items: list[IndexItem],
        docs: list[dict[str, Any]] | None,
        progress: str,
    ) -> int:
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
                count = done + len(chunk)
                upsert = asyncio.create_task(
                    self._upsert(job_id, collection, merchant_id, points, progress, count)
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
            if docs is None and progress != "indexed":
                raise
            log.exception("indexing failed", extra={"job": job_id, "merchant": merchant_id})
            if job_id is not None:
                await self._records.update_job(
                    job_id, status="failed", failure=f"indexing failed: {type(exc).__name__}"
                )
            raise
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
        progress: str,
        count: int,
    ) -> None:
        await self._vectors.upsert(collection, merchant_id, points)
        if job_id is not None:
            await self._records.update_job(job_id, **{progress: count})


# Concurrent record lookups while checking a knowledge re-import for shrunk documents.
SHRINK_LOOKUPS = 64


# --- reconciliation: records are the truth, vectors follow them -------------------------------

INDEX_STATE = "index_state"
INDEX_REV = "index_rev"
PENDING = "pending"
INDEXED = "indexed"
# Knowledge: the most chunks any indexed version of the document had, so a shrink can name the
# vector ids it leaves behind (engine.domain.catalog.knowledge_vector_ids).
VECTOR_CHUNKS = "vector_chunks"
# Walks over the pending records per reconcile run (a record edited during every walk waits
# for the next sweep).
MAX_PASSES = 4


def tombstone(collection: str, record: dict[str, Any], vector_ids: list[str]) -> dict[str, Any]:
    """Written BEFORE a record is deleted: "these vectors must go once the record is gone".

    Tombstone first, delete second: a crash in between leaves a tombstone for a record that
    still exists, which the reconciler simply drops; no order of crashes leaves a deleted
    record's vectors behind with nothing to remove them.
    """
    return {
        "_id": f"{collection}:{record['_id']}:{secrets.token_hex(4)}",
        "merchant_id": record["merchant_id"],
        "collection": collection,
        "record_id": record["_id"],
        "vector_ids": vector_ids,
    }


def pending_fields() -> dict[str, Any]:
    """Fields an API write sets in the SAME update as the change it makes.

    This is the outbox: "this version is not in the vector index yet" is part of the record,
    written atomically with it, so no crash between two writes can lose a re-index. The
    indexer clears it only for the revision it indexed (a newer edit stays pending).
    """
    return {INDEX_STATE: PENDING, INDEX_REV: secrets.token_hex(8)}


def _items_for(collection: str, doc: dict[str, Any]) -> tuple[list[IndexItem], list[str]]:
    """Index items for one record, plus vector ids it no longer owns (knowledge shrinks)."""
    if collection == PRODUCTS:
        items = product_index_items(Product.from_doc(doc))
        # An edit that emptied the description leaves its description vector behind.
        mine = product_vector_ids(str(doc["sku"]))
        return items, [v for v in mine if v not in {i.id for i in items}]
    kd = KnowledgeDoc(
        id=str(doc["doc_id"]),
        title=str(doc.get("title") or ""),
        body=str(doc.get("body") or ""),
        language=doc.get("language"),
    )
    items = knowledge_index_items(kd)
    current = {i.id for i in items}
    chunks = len({i.payload["chunk_id"] for i in items})
    owned = max(chunks, int(doc.get(VECTOR_CHUNKS) or doc.get("chunks") or 0))
    return items, [i for i in knowledge_vector_ids(kd.id, owned) if i not in current]


class IndexReconciler:
    """Brings the vector index up to date with records marked :data:`PENDING`.

    Runs in the indexer actor: when the API nudges it after a write (fast path) and on a timer
    (after a crash, a lost nudge, an embedder outage). Idempotent: indexing a version twice
    upserts the same points.
    """

    def __init__(
        self, repos: Repositories, service: IndexService, vectors: VectorStore, batch: int = 256
    ) -> None:
        self._repos = repos
        self._service = service
        self._vectors = vectors
        self._batch = batch

    async def run_once(self, merchant_id: str | None = None) -> int:
        """Index every pending record and honour every tombstone (of one merchant, or all);
        returns how many records were handled.

        Pending records are walked by id, page after page, so one that cannot be marked does
        not hold up the rest; a version edited while it was being indexed is picked up by
        another pass (at most ``MAX_PASSES``; the next sweep continues).
        """
        done = await self._bury(merchant_id)
        for collection in (PRODUCTS, KNOWLEDGE):
            records = self._repos.catalog(collection)
            seen: set[tuple[Any, Any]] = set()
            for _ in range(MAX_PASSES):
                handled = 0
                after: str | None = None
                while docs := await records.pending(merchant_id, after_id=after, limit=self._batch):
                    after = str(docs[-1]["_id"])
                    fresh = [d for d in docs if (d["_id"], d.get(INDEX_REV)) not in seen]
                    seen.update((d["_id"], d.get(INDEX_REV)) for d in fresh)
                    if fresh:
                        handled += await self._index(collection, fresh)
                done += handled
                if not handled:
                    break
        return done

    async def _index(self, collection: str, docs: list[dict[str, Any]]) -> int:
        by_merchant: dict[str, list[dict[str, Any]]] = {}
        for d in docs:
            by_merchant.setdefault(str(d["merchant_id"]), []).append(d)
        records = self._repos.catalog(collection)
        for merchant, group in by_merchant.items():
            built = [(d, *_items_for(collection, d)) for d in group]
            await self._service.index(
                None, merchant, collection, [i for _, items, _ in built for i in items]
            )
            stale = [v for _, _, s in built for v in s]
            if stale:
                await self._vectors.delete(collection, merchant, stale)
            for d, items, _ in built:
                done: dict[str, Any] = {INDEX_STATE: INDEXED}
                if collection == KNOWLEDGE:
                    done[VECTOR_CHUNKS] = len({i.payload["chunk_id"] for i in items})
                # Only the revision that was indexed: an edit made meanwhile stays pending.
                await records.mark_indexed(merchant, str(d["_id"]), d.get(INDEX_REV), done)
        return len(docs)

    async def _bury(self, merchant_id: str | None) -> int:
        """Remove the vectors of deleted records (see :func:`tombstone`)."""
        graves = self._repos.tombstones
        buried = 0
        while docs := await graves.batch(merchant_id, limit=self._batch):
            for t in docs:
                collection = str(t["collection"])
                owner = str(t["merchant_id"])
                alive = await self._repos.catalog(collection).exists(owner, str(t["record_id"]))
                if not alive:  # deleted (a re-created record owns its vectors again)
                    await self._vectors.delete(collection, owner, list(t["vector_ids"]))
                    buried += 1
                await graves.remove(owner, str(t["_id"]))
        return buried
