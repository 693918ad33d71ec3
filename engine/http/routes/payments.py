"""Payment routes: the merchant's provider, a payment link per order, refunds.

Creating a payment and refunding take an ``Idempotency-Key`` (``engine.http.idempotency``):
the same key replays, the same key with another body is a 422, a repeat while the first runs
is a 409. A payment is also named by its order, so two keys for one order get one invoice.
"""

from __future__ import annotations

from typing import Any

from connectors.payments import PROVIDERS
from engine.adapters import egress
from engine.http import schemas as s
from engine.http.context import client_ip
from engine.http.idempotency import idempotent
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.services.payments import (
    PaymentBusy,
    PaymentNotFound,
    PaymentRejected,
    Payments,
    ProviderFailed,
    payment_out,
)

P = "/api/v1/payments"


def _payments(ctx: Ctx) -> Payments:
    payments = ctx.api.payments
    if payments is None:
        raise ProblemError(503, "Payments unavailable", "this gateway has no payments service")
    return payments


def _problem(exc: Exception) -> ProblemError:
    if isinstance(exc, PaymentNotFound):
        return ProblemError(404, "Not found", str(exc))
    if isinstance(exc, PaymentRejected):
        return ProblemError(422, "Payment rejected", str(exc))
    if isinstance(exc, PaymentBusy):
        return ProblemError(409, "Payment in progress", str(exc))
    return ProblemError(502, "Payment provider failed", str(exc))


async def put_provider(ctx: Ctx) -> dict[str, Any]:
    body: s.PaymentProviderIn = ctx.body
    module = PROVIDERS[body.kind]
    if "webhook_secret" in module.CREDENTIALS and not body.webhook_secret:
        raise ProblemError(
            422,
            "Validation failed",
            "webhook_secret: required for this provider",
            errors=[{"field": "webhook_secret", "message": "required"}],
        )
    api_base = body.api_base or module.API_BASE
    settings = ctx.api.settings
    refusal = egress.check_api_base(
        api_base,
        (*module.API_HOSTS, *settings.provider_hosts),
        allow_private=settings.allow_private_api_base,
    )
    if refusal is not None:
        raise ProblemError(
            422,
            "Validation failed",
            f"api_base: must be {refusal}",
            errors=[{"field": "api_base", "message": f"must be {refusal}"}],
        )
    creds = {"secret_key": body.secret_key, "webhook_secret": body.webhook_secret or ""}
    out = await _payments(ctx).configure(ctx.merchant_id, body.kind, creds, api_base)
    await ctx.api.audit(
        ctx.merchant_id, ctx.actor, "payments.provider", body.kind, client_ip(ctx.request)
    )
    return out


async def get_provider(ctx: Ctx) -> dict[str, Any]:
    view = await _payments(ctx).provider_view(ctx.merchant_id)
    if view is None:
        raise ProblemError(404, "Not found", "no payment provider connected")
    return view


async def create_payment(ctx: Ctx) -> Reply:
    body: s.PaymentIn = ctx.body
    payments = _payments(ctx)

    async def run(request_id: str) -> Reply:
        try:
            doc = await payments.for_order(ctx.merchant_id, body.order_id)
        except (PaymentNotFound, PaymentRejected, PaymentBusy, ProviderFailed) as exc:
            raise _problem(exc) from exc
        out = payment_out(doc)
        return Reply(201, out, {"Location": f"{P}/{out['id']}"})

    return await idempotent(ctx, "payments", body, run)


async def get_payment(ctx: Ctx) -> dict[str, Any]:
    doc = await _payments(ctx).get(ctx.merchant_id, ctx.path["payment_id"])
    if doc is None:
        raise ProblemError(404, "Not found", "no such payment")
    return payment_out(doc)


async def payment_exists(ctx: Ctx) -> bool:
    """Another merchant's payment is a 404 for every role, before any 403 or 400."""
    return await _payments(ctx).get(ctx.merchant_id, ctx.path["payment_id"]) is not None


async def refund_payment(ctx: Ctx) -> Reply:
    body: s.RefundIn = ctx.body
    payments = _payments(ctx)
    payment_id = ctx.path["payment_id"]
    if not await payment_exists(ctx):
        raise ProblemError(404, "Not found", "no such payment")

    async def run(request_id: str) -> Reply:
        try:
            out = await payments.refund(ctx.merchant_id, payment_id, body.amount_minor, request_id)
        except (PaymentNotFound, PaymentRejected, ProviderFailed) as exc:
            raise _problem(exc) from exc
        return Reply(201, out)

    return await idempotent(ctx, f"refunds:{payment_id}", body, run)
