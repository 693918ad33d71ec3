"""Catalog and knowledge imports (JSONL or CSV files) and the jobs that index them.

An import answers 202 with a job at once: good rows are stored and indexed by the indexer
actor while the job reports progress; bad rows are listed by line and never block the good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from engine.domain import catalog
from engine.domain.catalog import KNOWLEDGE, PRODUCTS
from engine.http.context import API
from engine.http.problems import READ_CHUNK_BYTES, ProblemError, read_limited
from engine.http.routing import Ctx, Reply
from engine.services.indexing import IndexItem, knowledge_index_items, product_index_items

T = TypeVar("T")
MEDIA = ("application/x-ndjson", "text/csv")


class UploadSlots:
    """Uploads this gateway reads and parses at once: a few in all, one per merchant, so
    nobody's 50 MiB upload can take the gateway's memory or another merchant's turn."""

    def __init__(self, total: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._merchants: set[str] = set()

    @contextlib.asynccontextmanager
    async def slot(self, merchant_id: str) -> AsyncIterator[None]:
        if merchant_id in self._merchants:
            raise ProblemError(
                429, "Upload in progress", "this merchant's previous upload is still being read"
            )
        self._merchants.add(merchant_id)
        try:
            async with self._total:
                yield
        finally:
            self._merchants.discard(merchant_id)


UPLOADS = web.AppKey("uploads", UploadSlots)


async def _read(ctx: Ctx, upload: Any, parser: Callable[[bytes, str], T]) -> T:
    """The upload parsed: JSON lines while they arrive (never the whole body in memory),
    other formats read whole (bounded by the import limit) and parsed in a thread."""
    request = ctx.request
    limit = request.app[API].settings.max_import_bytes
    content_type = (request.content_type or "application/x-ndjson").lower()
    async with request.app[UPLOADS].slot(ctx.merchant_id):
        if not catalog.is_json_lines(content_type):
            return await _parse(parser, await read_limited(request, limit), content_type)
        if request.content_length is not None and request.content_length > limit:
            raise ProblemError(413, "Payload too large", f"the limit is {limit} bytes")
        size = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise ProblemError(413, "Payload too large", f"the limit is {limit} bytes")
            await asyncio.to_thread(upload.feed, chunk)
        result: T = await asyncio.to_thread(upload.close)
        return result


async def _parse(parser: Callable[[bytes, str], T], body: bytes, content_type: str) -> T:
    """Parsing a large file is CPU work: it runs in a thread, off the event loop."""
    try:
        return await asyncio.to_thread(parser, body, content_type)
    except catalog.UnsupportedContentType as exc:
        raise ProblemError(415, "Unsupported media type", str(exc)) from exc
    except catalog.ImportFormatError as exc:
        raise ProblemError(400, "Unreadable file", str(exc)) from exc


async def _check_quota(ctx: Ctx, new_rows: int) -> None:
    api = ctx.request.app[API]
    quota = api.settings.max_products_per_merchant
    if await api.records.count_products(ctx.merchant_id) + new_rows > quota:
        raise ProblemError(
            422,
            "Over the catalogue quota",
            f"a merchant keeps at most {quota} products",
            errors=[{"field": "body", "message": f"at most {quota} products"}],
        )


async def import_catalog(ctx: Ctx) -> Reply:
    parsed = await _read(ctx, catalog.product_upload(), catalog.parse_products)
    await _check_quota(ctx, len(parsed.rows))
    docs = [p.to_doc(ctx.merchant_id) for p in parsed.rows]
    items = [item for p in parsed.rows for item in product_index_items(p)]
    return await _start_job(ctx, PRODUCTS, items, docs, parsed.errors)


async def import_knowledge(ctx: Ctx) -> Reply:
    parsed = await _read(ctx, catalog.knowledge_upload(), catalog.parse_knowledge)
    docs = [{**d.to_doc(ctx.merchant_id), "doc_id": d.id} for d in parsed.rows]
    items = [item for d in parsed.rows for item in knowledge_index_items(d)]
    return await _start_job(ctx, KNOWLEDGE, items, docs, parsed.errors)


async def _start_job(
    ctx: Ctx,
    collection: str,
    items: list[IndexItem],
    docs: list[dict[str, Any]],
    row_errors: list[catalog.RowError],
) -> Reply:
    api = ctx.request.app[API]
    errors = [{"line": e.line, "message": e.message} for e in row_errors]
    job_id = await api.records.create_job(ctx.merchant_id, collection, len(docs), errors[:1000])
    if not docs:
        await api.records.update_job(job_id, status="failed" if errors else "done")
    else:
        api.deps.indexer.submit(job_id, ctx.merchant_id, collection, items, docs)
    return Reply(202, {"job_id": job_id})


async def get_job(ctx: Ctx) -> dict[str, Any]:
    job = await ctx.request.app[API].records.job(ctx.merchant_id, ctx.path["job_id"])
    if job is None:
        raise ProblemError(404, "Not found", "no such job")
    return {
        "id": job["_id"],
        "kind": job.get("kind"),
        "status": job["status"],
        "progress": job.get("progress", {}),
        "errors": job.get("errors", []),
        **({"failure": job["failure"]} if job.get("failure") else {}),
    }
