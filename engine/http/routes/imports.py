"""Catalog and knowledge imports (JSONL or CSV files) and the jobs that index them.

An import answers 202 with a job at once: good rows are stored and indexed by the indexer
actor while the job reports progress; bad rows are listed by line and never block the good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from engine.domain import catalog
from engine.http import schemas as s
from engine.http.context import API
from engine.http.problems import ProblemError, read_limited
from engine.http.routing import Ctx, Reply, Route
from engine.services.indexing import IndexItem, knowledge_index_items, product_index_item
from engine.services.retrieval import KNOWLEDGE, PRODUCTS

T = TypeVar("T")
MEDIA = ("application/x-ndjson", "text/csv")


async def _body(ctx: Ctx) -> tuple[bytes, str]:
    limit = ctx.request.app[API].settings.max_import_bytes
    body = await read_limited(ctx.request, limit)
    return body, (ctx.request.content_type or "application/x-ndjson").lower()


async def _parse(parser: Callable[[bytes, str], T], body: bytes, content_type: str) -> T:
    """Parsing a large file is CPU work: it runs in a thread, off the event loop."""
    try:
        return await asyncio.to_thread(parser, body, content_type)
    except catalog.UnsupportedContentType as exc:
        raise ProblemError(415, "Unsupported media type", str(exc)) from exc
    except catalog.ImportFormatError as exc:
        raise ProblemError(400, "Unreadable file", str(exc)) from exc


async def import_catalog(ctx: Ctx) -> Reply:
    parsed = await _parse(catalog.parse_products, *await _body(ctx))
    docs = [p.to_doc(ctx.merchant_id) for p in parsed.rows]
    items = [product_index_item(p) for p in parsed.rows]
    return await _start_job(ctx, PRODUCTS, items, docs, parsed.errors)


async def import_knowledge(ctx: Ctx) -> Reply:
    parsed = await _parse(catalog.parse_knowledge, *await _body(ctx))
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


ROUTES = [
    Route(
        "POST",
        "/api/v1/catalog/import",
        import_catalog,
        "Import products (JSONL or CSV with a header); bad rows are listed by line",
        "imports",
        perm="write",
        request_media=MEDIA,
        response=s.JobAccepted,
        status=202,
    ),
    Route(
        "POST",
        "/api/v1/knowledge/import",
        import_knowledge,
        "Import knowledge documents (JSONL {id, title, body})",
        "imports",
        perm="write",
        request_media=MEDIA,
        response=s.JobAccepted,
        status=202,
    ),
    Route("GET", "/api/v1/jobs/{job_id}", get_job, "An import job", "imports", response=s.JobOut),
]
