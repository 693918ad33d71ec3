"""Errors in one shape: RFC 9457 problem+json, with field-level details where they help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
