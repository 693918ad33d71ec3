"""Admin API routes of the message spine: merchants, imports, jobs, channels, playground."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from engine.domain import catalog
from engine.domain.messages import InboundMessage
from engine.http.hub_format import public_reply
from engine.http.keys import AUTH, DEPS, HUB
from engine.http.problems import (
    ProblemError,
    json_response,
    read_json_object,
    read_limited,
    require_str,
)
from engine.services.indexing import IndexItem, knowledge_index_items, product_index_item
from engine.services.retrieval import KNOWLEDGE, PRODUCTS
from observability import metrics, tracing

log = logging.getLogger(__name__)

LANGUAGES = frozenset({"ar", "en"})
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
MAX_TEXT = 4096
T = TypeVar("T")


async def create_merchant(request: web.Request) -> web.Response:
    request.app[AUTH].require_operator(request)
    data = await read_json_object(request, 16 * 1024)
    name = require_str(data, "name", max_len=200)
    language = require_str(data, "default_language", max_len=8, required=False) or "ar"
    if language not in LANGUAGES:
        raise ProblemError(
            422,
            "Validation failed",
            "default_language must be 'ar' or 'en'",
            errors=[{"field": "default_language", "message": "one of ar, en"}],
        )
    merchant_id, api_key = await request.app[DEPS].records.create_merchant(name.strip(), language)
    return json_response({"id": merchant_id, "api_key": api_key}, status=201)


def _content_type(request: web.Request) -> str:
    return (request.content_type or "application/x-ndjson").lower()


async def import_catalog(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    deps = request.app[DEPS]
    body = await read_limited(request, deps.settings.max_import_bytes)
    parsed = await _parse(catalog.parse_products, body, _content_type(request))
    errors = [{"line": e.line, "message": e.message} for e in parsed.errors]
    docs = [p.to_doc(caller.merchant_id) for p in parsed.rows]
    items = [product_index_item(p) for p in parsed.rows]
    return await _start_job(request, caller.merchant_id, PRODUCTS, items, docs, errors)


async def import_knowledge(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    deps = request.app[DEPS]
    body = await read_limited(request, deps.settings.max_import_bytes)
    parsed = await _parse(catalog.parse_knowledge, body, _content_type(request))
    errors = [{"line": e.line, "message": e.message} for e in parsed.errors]
    docs = [{**d.to_doc(caller.merchant_id), "doc_id": d.id} for d in parsed.rows]
    items = [item for d in parsed.rows for item in knowledge_index_items(d)]
    return await _start_job(request, caller.merchant_id, KNOWLEDGE, items, docs, errors)


async def _parse(parser: Callable[[bytes, str], T], body: bytes, content_type: str) -> T:
    """Parsing a large file is CPU work: it runs in a thread, off the event loop."""
    try:
        return await asyncio.to_thread(parser, body, content_type)
    except catalog.UnsupportedContentType as exc:
        raise ProblemError(415, "Unsupported media type", str(exc)) from exc
    except catalog.ImportFormatError as exc:
        raise ProblemError(400, "Unreadable file", str(exc)) from exc


async def _start_job(
    request: web.Request,
    merchant_id: str,
    collection: str,
    items: list[IndexItem],
    docs: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> web.Response:
    deps = request.app[DEPS]
    job_id = await deps.records.create_job(merchant_id, collection, len(docs), errors[:1000])
    if not docs:
        await deps.records.update_job(job_id, status="failed" if errors else "done")
    else:
        deps.indexer.submit(job_id, merchant_id, collection, items, docs)
    return json_response({"job_id": job_id}, status=202)


async def get_job(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    job = await request.app[DEPS].records.job(caller.merchant_id, request.match_info["job_id"])
    if job is None:
        raise ProblemError(404, "Not found", "no such job")
    return json_response(
        {
            "id": job["_id"],
            "kind": job.get("kind"),
            "status": job["status"],
            "progress": job.get("progress", {}),
            "errors": job.get("errors", []),
            **({"failure": job["failure"]} if job.get("failure") else {}),
        }
    )


async def playground_message(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    deps = request.app[DEPS]
    data = await read_json_object(request, 32 * 1024)
    customer_id = require_str(data, "customer_id", max_len=128)
    if not _CUSTOMER_ID.match(customer_id):
        raise ProblemError(
            422,
            "Validation failed",
            "customer_id: 1-128 of A-Z a-z 0-9 _ . : @ + -",
            errors=[{"field": "customer_id", "message": "invalid characters"}],
        )
    text = require_str(data, "text", max_len=MAX_TEXT).strip()
    if not text:
        raise ProblemError(
            422,
            "Validation failed",
            "text is empty",
            errors=[{"field": "text", "message": "empty"}],
        )
    started = time.perf_counter()
    message = InboundMessage(
        merchant_id=caller.merchant_id,
        channel_id="playground",
        channel_kind="playground",
        customer_id=customer_id,
        message_id=f"pg-{secrets.token_hex(10)}",
        text=text,
        received_at=time.time(),
    )
    hub = request.app[HUB]
    waiter = hub.expect(message.message_id)
    try:
        with tracing.span(
            "inbox.append",
            kind=tracing.SERVER,
            merchant_id=message.merchant_id,
            attributes={"kaleem.channel_kind": "playground"},
        ):
            await deps.inbox.append(tracing.carry(message))
        reply = await asyncio.wait_for(waiter, timeout=deps.settings.playground_timeout_s)
    except TimeoutError as exc:
        raise ProblemError(
            504, "Reply timed out", "the bot did not answer in time; the message is kept"
        ) from exc
    finally:
        hub.forget(message.message_id)
    metrics.PLAYGROUND_REPLY.observe(time.perf_counter() - started)
    return json_response(public_reply(reply))
