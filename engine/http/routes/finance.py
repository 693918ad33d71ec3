"""Daily settlement for staff: trigger a date, retry a failed one, read the history and totals.

A trigger never makes a second settlement: a date that has one answers it (200), a new one is
201. The figures are computed by ``engine.services.settlement`` from the money ledger.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from engine.domain import settlement as st
from engine.http import schemas as s
from engine.http.context import client_ip
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.services.ports import Document
from engine.services.settlement import NotRetryable, NotSettleable, Settlements

SETTLEMENT = "/api/v1/finance/settlement"
_MONEY = (
    "currency",
    "entries",
    "captures",
    "refunds",
    "chargebacks",
    "gross_captured_minor",
    "refunded_minor",
    "chargebacks_minor",
    "fees_minor",
    "vat_minor",
    "vat_rate_bp",
    "net_minor",
)


def settlement_out(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": doc["_id"],
        "date": doc["date"],
        "timezone": doc["timezone"],
        "status": doc["status"],
        "error": doc.get("error"),
        "window_start": doc["window_start"],
        "window_end": doc["window_end"],
        "attempts": doc.get("attempts", 1),
        "created_at": doc["created_at"],
        "settled_at": doc.get("settled_at"),
    }
    out.update({k: doc[k] for k in _MONEY})
    return out


def _service(ctx: Ctx) -> Settlements:
    svc = ctx.api.settlements
    assert svc is not None, "built by Container"
    return svc


def _date(ctx: Ctx) -> date:
    try:
        return st.parse_date(ctx.path["date"])
    except st.SettlementError as exc:
        raise ProblemError(
            400, "Invalid date", str(exc), errors=[{"field": "date", "message": str(exc)}]
        ) from exc


def _not_yet(exc: Exception) -> ProblemError:
    return ProblemError(
        422, "Date not settleable", str(exc), errors=[{"field": "date", "message": str(exc)}]
    )


async def trigger_latest(ctx: Ctx) -> Reply:
    """The latest due date (yesterday, once today's window has not closed)."""
    return await _trigger(ctx, await _service(ctx).latest_due(ctx.merchant_id))


async def trigger(ctx: Ctx) -> Reply:
    return await _trigger(ctx, _date(ctx))


async def _trigger(ctx: Ctx, day: date) -> Reply:
    svc = _service(ctx)
    try:
        done = await svc.settle(ctx.merchant_id, day)
    except NotSettleable as exc:
        raise _not_yet(exc) from exc
    if done.outcome == "busy" or done.record is None:
        raise ProblemError(409, "Settlement running", "that date is being settled; try again")
    if done.outcome == "created":
        await ctx.api.audit(
            ctx.merchant_id,
            ctx.actor,
            "settlement.trigger",
            day.isoformat(),
            client_ip(ctx.request),
        )
    return Reply(201 if done.outcome == "created" else 200, settlement_out(done.record))


async def retry(ctx: Ctx) -> Reply:
    svc = _service(ctx)
    day = _date(ctx)
    try:
        done = await svc.settle(ctx.merchant_id, day, retry=True)
    except NotSettleable as exc:
        raise _not_yet(exc) from exc
    except NotRetryable as exc:
        if exc.record is None:
            raise ProblemError(404, "Not found", "no settlement for that date") from exc
        raise ProblemError(409, "Not failed", str(exc)) from exc
    if done.outcome == "busy" or done.record is None:
        raise ProblemError(409, "Settlement running", "that date is being settled; try again")
    await ctx.api.audit(
        ctx.merchant_id, ctx.actor, "settlement.retry", day.isoformat(), client_ip(ctx.request)
    )
    return Reply(200, settlement_out(done.record))


async def history(ctx: Ctx) -> dict[str, Any]:
    q: s.PageQuery = ctx.query
    page = await _service(ctx).history(ctx.merchant_id, limit=q.limit, after=keyset(q.cursor))
    return listing(page, settlement_out)


async def get_settlement(ctx: Ctx) -> dict[str, Any]:
    doc = await _service(ctx).get(ctx.merchant_id, _date(ctx))
    if doc is None:
        raise ProblemError(404, "Not found", "no settlement for that date")
    return settlement_out(doc)


async def summary(ctx: Ctx) -> dict[str, Any]:
    q: s.SettlementSummaryQuery = ctx.query
    return await _service(ctx).summary(ctx.merchant_id, q.days)
