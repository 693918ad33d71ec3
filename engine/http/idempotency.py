"""Routes that create something take an ``Idempotency-Key``: one helper for all of them.

A client that retries after a timeout must get the first answer, not a second order or a
second payment. The key's record lives in Redis (``engine.adapters.redis.idempotency``); what
the request writes is named by the key (``request_id``), so even a request whose engine died
half-way and that runs again writes nothing twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from pydantic import BaseModel

from engine.adapters.redis.idempotency import request_id
from engine.http.context import API
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply

HEADER: Final = "Idempotency-Key"
DOC: Final = ((HEADER, True, "UUID v4; the same key replays the stored response (24 h)"),)
_UUID4: Final = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)


def idempotency_key(ctx: Ctx) -> str:
    key = ctx.request.headers.get(HEADER, "").strip()
    if not key:
        raise ProblemError(
            400,
            "Idempotency-Key required",
            "send Idempotency-Key: <UUID v4>; a retry with the same key is safe",
            errors=[{"field": HEADER, "message": "required"}],
        )
    if not _UUID4.match(key):
        raise ProblemError(
            400,
            "Invalid Idempotency-Key",
            "Idempotency-Key must be a UUID v4",
            errors=[{"field": HEADER, "message": "UUID v4"}],
        )
    return key.lower()


async def idempotent(
    ctx: Ctx, scope: str, body: BaseModel, run: Callable[[str], Awaitable[Reply]]
) -> Reply:
    """Run ``run(request_id)`` once per key; replay its answer (or its 4xx) afterwards."""
    key = idempotency_key(ctx)
    fingerprint = hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    store = ctx.request.app[API].idempotency
    merchant_id = ctx.merchant_id
    claim = await store.claim(merchant_id, scope, key, fingerprint)
    if claim.outcome == "mismatch":
        raise ProblemError(
            422,
            "Idempotency-Key reused",
            "this key was used with a different body; use a new key for a new request",
            errors=[{"field": HEADER, "message": "reused with another body"}],
        )
    if claim.outcome == "running":
        raise ProblemError(
            409, "Request in progress", "the first request with this key is still running"
        )
    if claim.outcome == "replay":
        stored = claim.body
        if claim.status >= 400:
            raise ProblemError(
                claim.status, stored["title"], stored.get("detail", ""), errors=stored["errors"]
            )
        return Reply(claim.status, stored, {"Idempotent-Replayed": "true"})
    try:
        reply = await run(request_id(merchant_id, scope, key))
    except ProblemError as exc:
        if exc.status >= 500:
            await store.release(merchant_id, scope, key)
            raise
        problem = {"title": exc.title, "detail": exc.detail, "errors": exc.extra.get("errors")}
        await store.finish(merchant_id, scope, key, fingerprint, exc.status, problem)
        raise
    except BaseException:
        await store.release(merchant_id, scope, key)
        raise
    await store.finish(merchant_id, scope, key, fingerprint, reply.status, reply.body)
    return reply
