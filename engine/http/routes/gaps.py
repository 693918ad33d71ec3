"""Merchant analytics routes: the knowledge gaps (questions the bot could not answer)."""

from __future__ import annotations

from aiohttp import web

from engine.http.keys import AUTH, DEPS
from engine.http.problems import ProblemError, json_response
from engine.services.gaps import MAX_LIST, KnowledgeGaps

DEFAULT_LIMIT = 50


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise ProblemError(
            400,
            "Invalid query parameter",
            f"limit must be an integer from 1 to {MAX_LIST}",
            errors=[{"field": "limit", "message": f"1..{MAX_LIST}"}],
        )
    return int(raw)


async def list_gaps(request: web.Request) -> web.Response:
    """``GET /api/v1/analytics/gaps?limit=N``: most-asked unanswered questions first."""
    caller = await request.app[AUTH].require_merchant(request)
    limit = _limit(request)
    gaps = KnowledgeGaps(request.app[DEPS].records.repos)
    items = await gaps.list(caller.merchant_id, limit)
    return json_response({"items": items, "limit": limit})


def register(app: web.Application) -> None:
    app.router.add_get("/api/v1/analytics/gaps", list_gaps)
