"""Payment provider webhooks: ``POST /webhooks/payments/{kind}/{merchant_id}``.

Verify on the raw body (Moyasar's ``secret_token``, Tap's ``hashstring``), record the event
(deduplicated by the provider's event id), answer 200, and apply it. A bad secret is a 401
and changes nothing; a redelivered event is a 200 and changes nothing. When applying fails
the event stays recorded and the provider still gets its 200: it is applied again in the
background (the database retry policy), by the sweep at every gateway's start and then every
``KALEEM_PAYMENT_SWEEP_INTERVAL_S`` (60 s), with the same effects exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from engine.http import webhooks
from engine.http.context import API
from engine.http.keys import DEPS
from engine.http.problems import ProblemError, json_response, read_limited
from observability import metrics, tracing

log = logging.getLogger(__name__)


async def payment_webhook(request: web.Request) -> web.Response:
    failures = await webhooks.admit(request)
    try:
        return await _payment_webhook(request)
    except ProblemError as exc:
        if exc.status in (400, 401, 404):
            await request.app[API].limiter.hit([(failures, 1 << 30)])
        raise


async def _payment_webhook(request: web.Request) -> web.Response:
    payments = request.app[API].payments
    kind = request.match_info["kind"]
    merchant_id = request.match_info["merchant_id"]
    if payments is None:
        raise ProblemError(404, "Unknown payment provider", "payments are not enabled")
    body = await read_limited(request, request.app[DEPS].settings.max_body_bytes)
    with tracing.span(f"webhook.payments.{kind}", kind=tracing.SERVER):
        outcome, event = await payments.receive(kind, merchant_id, request.headers, body)
        if outcome == "unknown":
            metrics.PAYMENT_WEBHOOKS.labels("unknown", "unknown").inc()
            raise ProblemError(404, "Unknown payment provider", "no such provider for merchant")
        if outcome == "bad_signature":
            raise ProblemError(401, "Unauthorized", "signature or secret token missing or wrong")
        if event is not None:
            try:
                await payments.apply(event)
            except Exception:  # recorded: applied again in the background, then by the sweep
                log.exception("payment event not applied yet", extra={"provider": kind})
                _later(payments.settle(event))
    return json_response({"ok": True})


# Background applications in flight (bounded by the webhook rate; cancelled at shutdown).
_TASKS: set[asyncio.Task[Any]] = set()


def _later(work: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


# A periodic sweep leaves events younger than this to the webhook that is applying them
# (its database retries, five from 500 ms doubling, end within 16 s), so no event is
# applied by two at once.
SWEEP_MIN_AGE_S = 30.0


async def _sweep(app: web.Application) -> None:
    payments = app[API].payments
    if payments is None:
        return
    interval = app[DEPS].settings.payment_sweep_interval_s
    older_than = 0.0  # at start-up every unapplied event is a dead process's
    while True:
        try:
            await payments.sweep(older_than_s=older_than)
        except Exception:  # a database outage: the next round tries again
            log.exception("payment sweep failed")
        older_than = SWEEP_MIN_AGE_S
        await asyncio.sleep(interval)


async def sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """Apply what a previous process recorded but did not finish, at start-up and then
    periodically (every gateway does; the effects are idempotent)."""
    task = asyncio.get_running_loop().create_task(_sweep(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for pending in list(_TASKS):
        pending.cancel()
    payments = app[API].payments
    if payments is not None:
        await payments.close()


def add_routes(app: web.Application) -> None:
    app.router.add_post("/webhooks/payments/{kind}/{merchant_id}", payment_webhook)
