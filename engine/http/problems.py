"""Errors in one shape: RFC 9457 problem+json, with field-level details where they help."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNAVAILABLE_RETRY_AFTER_S = 1
_UNAVAILABLE_LOG_EVERY_S = 5.0
_unavailable_logged_at = 0.0


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/problem+json"
    )


class ProblemError(Exception):
    """Raised anywhere in a handler to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def as_problem(exc: ProblemError | web.HTTPException) -> web.Response:
    """The one rendering of an error as a problem document (see ``edge_middleware``)."""
    if isinstance(exc, ProblemError):
        return problem(exc.status, exc.title, exc.detail, **exc.extra)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return problem(413, "Payload too large", exc.text or "")
    return problem(exc.status, exc.reason, exc.text or "")


def store_unavailable(exc: BaseException) -> web.Response | None:
    """The retryable 503 for "Redis is unreachable right now", or None for any other error.

    While the embedded Redis restarts (or an external one fails over) nothing can be made
    durable, so nothing may be acknowledged; a 503 with ``Retry-After`` makes providers
    redeliver and clients retry, where a 500 would read as a bug. Looks through the cause
    chain and through Ray's task errors (``cause``), bounded.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, RedisConnectionError | RedisTimeoutError):
            _log_unavailable(seen)
            response = problem(
                503, "Service unavailable", "a backing store is restarting; retry shortly"
            )
            response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
            return response
        cause = getattr(seen, "cause", None)
        seen = cause if isinstance(cause, BaseException) else (seen.__cause__ or seen.__context__)
    return None


def _log_unavailable(exc: BaseException) -> None:
    """One line per few seconds, not one per request of a burst."""
    global _unavailable_logged_at
    now = time.monotonic()
    if now - _unavailable_logged_at >= _UNAVAILABLE_LOG_EVERY_S:
        _unavailable_logged_at = now
        log.warning("redis unreachable; answering 503", extra={"error": type(exc).__name__})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


READ_CHUNK_BYTES = 256 * 1024


async def read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ProblemError(413, "Payload too large", f"the limit is {limit} bytes")
    # StreamReader.read(n) returns what has arrived (at most n), not n bytes: a large upload
    # must be read to EOF, chunk by chunk, or its tail is silently dropped.
    parts: list[bytes] = []
    size = 0
    async for part in request.content.iter_chunked(READ_CHUNK_BYTES):
        size += len(part)
        if size > limit:
            raise ProblemError(413, "Payload too large", f"the limit is {limit} bytes")
        parts.append(part)
    return b"".join(parts)
