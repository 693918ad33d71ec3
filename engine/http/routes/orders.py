"""Orders and leads for staff, with ``Idempotency-Key`` on order creation.

Idempotency records live in Redis for 24 h (TTL): the first request claims the key with SET NX
(state "pending" + a hash of the body); a repeat with the same body replays the stored response,
a different body is a 422, and a repeat while the first is still running is a 409. A failure
with a 5xx releases the key so the client can retry.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import orjson

from engine.adapters.redis import keys
from engine.domain.commerce import CommerceError, normalize_phone
from engine.http import schemas as s
from engine.http.context import API, Api, found
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply, Route
from engine.services.ports import Document

IDEMPOTENCY_TTL_S = 24 * 3600
_UUID4 = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)
TRANSITIONS = {
    "new": {"confirmed", "cancelled"},
    "confirmed": {"shipped", "cancelled"},
    "shipped": {"delivered"},
    "delivered": set(),
    "cancelled": set(),
}


def _api(ctx: Ctx) -> Api:
    return ctx.request.app[API]


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


def _idempotency_key(ctx: Ctx) -> str:
    key = ctx.request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise ProblemError(
            400,
            "Idempotency-Key required",
            "send Idempotency-Key: <UUID v4>; a retry with the same key is safe",
            errors=[{"field": "Idempotency-Key", "message": "required"}],
        )
    if not _UUID4.match(key):
        raise ProblemError(
            400,
            "Invalid Idempotency-Key",
            "Idempotency-Key must be a UUID v4",
            errors=[{"field": "Idempotency-Key", "message": "UUID v4"}],
        )
    return key.lower()


async def create_order(ctx: Ctx) -> Reply:
    api = _api(ctx)
    body: s.OrderIn = ctx.body
    key = _idempotency_key(ctx)
    fingerprint = hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    rkey = keys.idempotency(ctx.merchant_id, "orders", key)
    redis = api.deps.redis
    claimed = await redis.set(
        rkey, orjson.dumps({"state": "pending", "hash": fingerprint}), nx=True, ex=IDEMPOTENCY_TTL_S
    )
    if not claimed:
        raw = await redis.get(rkey)
        record: dict[str, Any] = (
            orjson.loads(raw) if raw else {"state": "pending", "hash": fingerprint}
        )
        if record["hash"] != fingerprint:
            raise ProblemError(
                422,
                "Idempotency-Key reused",
                "this key was used with a different body; use a new key for a new order",
                errors=[{"field": "Idempotency-Key", "message": "reused with another body"}],
            )
        if record["state"] == "pending":
            raise ProblemError(
                409, "Request in progress", "the first request with this key is still running"
            )
        stored: dict[str, Any] = record["body"]
        if int(record["status"]) >= 400:
            raise ProblemError(
                int(record["status"]), stored["title"], stored["detail"], errors=stored["errors"]
            )
        return Reply(int(record["status"]), stored, {"Idempotent-Replayed": "true"})

    try:
        order = await api.commerce.create_order(
            ctx.merchant_id,
            body.customer.model_dump(),
            [i.model_dump() for i in body.items],
            source="api",
        )
        status, out = 201, order_out(order)
    except CommerceError as exc:
        status, out = (
            422,
            {
                "type": "about:blank",
                "title": "Order rejected",
                "status": 422,
                "detail": str(exc),
                "errors": [
                    {
                        "field": "items" if "sku" in str(exc) or "qty" in str(exc) else "customer",
                        "message": str(exc),
                    }
                ],
            },
        )
    except BaseException:
        await redis.delete(rkey)
        raise
    await redis.set(
        rkey,
        orjson.dumps({"state": "done", "hash": fingerprint, "status": status, "body": out}),
        keepttl=True,
    )
    if status != 201:
        raise ProblemError(422, out["title"], out["detail"], errors=out["errors"])
    return Reply(201, out, {"Location": f"/api/v1/orders/{out['id']}"})


async def order_exists(ctx: Ctx) -> bool:
    return await _api(ctx).commerce.get_order(ctx.merchant_id, ctx.path["order_id"]) is not None


async def get_order(ctx: Ctx) -> dict[str, Any]:
    doc = await _api(ctx).commerce.get_order(ctx.merchant_id, ctx.path["order_id"])
    if doc is None:
        raise ProblemError(404, "Not found", "no such order")
    return order_out(doc)


async def patch_order(ctx: Ctx) -> dict[str, Any]:
    api = _api(ctx)
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
        conv = await _api(ctx).repos.conversations.get(ctx.merchant_id, q.conversation)
        if conv is None:
            return {"items": [], "next_cursor": None}
        found = await _api(ctx).repos.orders.for_conversation(
            ctx.merchant_id, str(conv["conversation_key"]), limit=q.limit
        )
        return {"items": [order_out(o) for o in found], "next_cursor": None}
    orders = await _api(ctx).repos.orders.page(
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
        lead = await _api(ctx).commerce.create_lead(
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
    return await _api(ctx).repos.leads.get(ctx.merchant_id, ctx.path["lead_id"])


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
    doc = await _api(ctx).repos.leads.update(ctx.merchant_id, ctx.path["lead_id"], sets)
    return lead_out(found(doc, "lead"))


async def list_leads(ctx: Ctx) -> dict[str, Any]:
    q: s.LeadQuery = ctx.query
    leads = await _api(ctx).repos.leads.page(
        ctx.merchant_id, status=q.status, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(leads, lead_out)


IDEM = (("Idempotency-Key", True, "UUID v4; the same key replays the stored response (24 h)"),)
ORD = "/api/v1/orders"
L = "/api/v1/leads"
ROUTES = [
    Route(
        "GET", ORD, list_orders, "List orders", "orders", query=s.OrderQuery, response=s.OrderPage
    ),
    Route(
        "POST",
        ORD,
        create_order,
        "Create an order (priced from the catalog)",
        "orders",
        perm="converse",
        body=s.OrderIn,
        response=s.OrderOut,
        status=201,
        headers=IDEM,
    ),
    Route("GET", ORD + "/{order_id}", get_order, "Get an order", "orders", response=s.OrderOut),
    Route(
        "PATCH",
        ORD + "/{order_id}",
        patch_order,
        "Change an order's status",
        "orders",
        perm="converse",
        body=s.OrderPatchIn,
        response=s.OrderOut,
        exists=order_exists,
    ),
    Route("GET", L, list_leads, "List leads", "leads", query=s.LeadQuery, response=s.LeadPage),
    Route(
        "POST",
        L,
        create_lead,
        "Create a lead",
        "leads",
        perm="converse",
        body=s.LeadIn,
        response=s.LeadOut,
        status=201,
    ),
    Route("GET", L + "/{lead_id}", get_lead, "Get a lead", "leads", response=s.LeadOut),
    Route(
        "PATCH",
        L + "/{lead_id}",
        patch_lead,
        "Update a lead",
        "leads",
        perm="converse",
        body=s.LeadPatchIn,
        response=s.LeadOut,
        exists=lead_exists,
    ),
]
