"""Orders and leads for staff; creating an order takes an ``Idempotency-Key``.

The same key replays the first answer (24 h), the same key with another body is a 422, and a
repeat while the first runs is a 409 (``engine.http.idempotency``). The order is named by the
key, so a request that runs again after a crash finds its order instead of making a second.
"""

from __future__ import annotations

import time
from typing import Any

from engine.domain.commerce import CommerceError, normalize_phone
from engine.http import schemas as s
from engine.http.context import found
from engine.http.idempotency import idempotent
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply
from engine.services.ports import Document

TRANSITIONS = {
    "new": {"confirmed", "cancelled"},
    "confirmed": {"shipped", "cancelled"},
    "shipped": {"delivered"},
    "delivered": set(),
    "cancelled": set(),
}


def order_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "status": doc["status"],
        "customer": doc["customer"],
        "items": doc["items"],
        "total": doc["total"],
        "currency": doc.get("currency"),
        "source": doc.get("source", ""),
        "conversation_key": doc.get("conversation_key"),
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def lead_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc.get("name", ""),
        "phone": doc.get("phone", ""),
        "city": doc.get("city", ""),
        "source": doc.get("source", ""),
        "status": doc.get("status", "new"),
        "note": doc.get("note", ""),
        "order_id": doc.get("order_id"),
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


async def create_order(ctx: Ctx) -> Reply:
    body: s.OrderIn = ctx.body

    async def place(request_id: str) -> Reply:
        try:
            order = await ctx.api.commerce.create_order(
                ctx.merchant_id,
                body.customer.model_dump(),
                [i.model_dump() for i in body.items],
                source="api",
                request_id=request_id,
            )
        except CommerceError as exc:
            field = "items" if "sku" in str(exc) or "qty" in str(exc) else "customer"
            raise ProblemError(
                422, "Order rejected", str(exc), errors=[{"field": field, "message": str(exc)}]
            ) from exc
        out = order_out(order)
        return Reply(201, out, {"Location": f"/api/v1/orders/{out['id']}"})

    return await idempotent(ctx, "orders", body, place)


async def order_exists(ctx: Ctx) -> bool:
    return await ctx.api.commerce.get_order(ctx.merchant_id, ctx.path["order_id"]) is not None


async def get_order(ctx: Ctx) -> dict[str, Any]:
    doc = await ctx.api.commerce.get_order(ctx.merchant_id, ctx.path["order_id"])
    if doc is None:
        raise ProblemError(404, "Not found", "no such order")
    return order_out(doc)


async def patch_order(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.OrderPatchIn = ctx.body
    doc = await api.commerce.get_order(ctx.merchant_id, ctx.path["order_id"])
    if doc is None:
        raise ProblemError(404, "Not found", "no such order")
    if body.status != doc["status"] and body.status not in TRANSITIONS[str(doc["status"])]:
        raise ProblemError(
            409,
            "Invalid status change",
            f"an order that is {doc['status']} cannot become {body.status}",
        )
    updated = await api.commerce.update_order_status(
        ctx.merchant_id, str(doc["_id"]), str(doc["status"]), body.status
    )
    if updated is None:
        raise ProblemError(409, "Conflict", "the order changed meanwhile; read it and retry")
    return order_out(updated)


async def list_orders(ctx: Ctx) -> dict[str, Any]:
    q: s.OrderQuery = ctx.query
    if q.conversation:
        conv = await ctx.api.repos.conversations.get(ctx.merchant_id, q.conversation)
        if conv is None:
            return {"items": [], "next_cursor": None}
        found = await ctx.api.repos.orders.for_conversation(
            ctx.merchant_id, str(conv["conversation_key"]), limit=q.limit
        )
        return {"items": [order_out(o) for o in found], "next_cursor": None}
    orders = await ctx.api.repos.orders.page(
        ctx.merchant_id,
        status=q.status,
        phone=normalize_phone(q.phone) if q.phone else None,
        limit=q.limit,
        after=keyset(q.cursor),
    )
    return listing(orders, order_out)


async def create_lead(ctx: Ctx) -> Reply:
    body: s.LeadIn = ctx.body
    try:
        lead = await ctx.api.commerce.create_lead(
            ctx.merchant_id,
            name=body.name,
            phone=body.phone,
            city=body.city,
            note=body.note,
            source="api",
        )
    except CommerceError as exc:
        raise ProblemError(
            422, "Validation failed", str(exc), errors=[{"field": "phone", "message": str(exc)}]
        ) from exc
    return Reply(201, lead_out(lead))


async def _lead(ctx: Ctx) -> Document | None:
    return await ctx.api.repos.leads.get(ctx.merchant_id, ctx.path["lead_id"])


async def lead_exists(ctx: Ctx) -> bool:
    return await _lead(ctx) is not None


async def get_lead(ctx: Ctx) -> dict[str, Any]:
    doc = await _lead(ctx)
    if doc is None:
        raise ProblemError(404, "Not found", "no such lead")
    return lead_out(doc)


async def patch_lead(ctx: Ctx) -> dict[str, Any]:
    body: s.LeadPatchIn = ctx.body
    sets = {**body.model_dump(exclude_unset=True, exclude_none=True), "updated_at": time.time()}
    doc = await ctx.api.repos.leads.update(ctx.merchant_id, ctx.path["lead_id"], sets)
    return lead_out(found(doc, "lead"))


async def list_leads(ctx: Ctx) -> dict[str, Any]:
    q: s.LeadQuery = ctx.query
    leads = await ctx.api.repos.leads.page(
        ctx.merchant_id, status=q.status, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(leads, lead_out)


ORD = "/api/v1/orders"
L = "/api/v1/leads"
