"""Carts for staff: list the open carts, read one, set one.

Where things live (``domain.carts``): a conversation's cart is part of its checkpoint, the
bot's source of truth; the list reads the ``carts`` projection the conversation hosts keep.

A staff edit is applied like a takeover: a "cart" control message through the conversation's
own inbox, so the bot applies it in order with the customer's messages and its own turns and it
is never lost (the inbox is durable and replayed after a crash), plus an optimistic edit of the
checkpoint so the next read shows it at once. A bot turn already running when the edit arrives
may briefly write its own cart back; the control message, queued behind that turn, then sets the
staff's cart again and the host checkpoints and re-projects it.
"""

from __future__ import annotations

import time
from typing import Any

from engine.domain.carts import clean_lines
from engine.domain.commerce import CommerceError
from engine.http import schemas as s
from engine.http.context import Api, found
from engine.http.paging import keyset, listing
from engine.http.problems import ProblemError
from engine.http.routes.conversations import channel_kind
from engine.http.routing import Ctx
from engine.services.ports import Document
from engine.services.projections import cart_out, cart_projection


async def list_carts(ctx: Ctx) -> dict[str, Any]:
    q: s.CartQuery = ctx.query
    carts = await ctx.api.repos.carts.page(
        ctx.merchant_id, channel_id=q.channel, limit=q.limit, after=keyset(q.cursor)
    )
    return listing(carts, cart_out)


async def _conversation(ctx: Ctx) -> Document:
    conv = await ctx.api.repos.conversations.get(ctx.merchant_id, ctx.path["conversation_id"])
    return found(conv, "conversation")


async def _out(
    api: Api, merchant_id: str, conv: Document, lines: list[dict[str, Any]], at: float | None
) -> dict[str, Any]:
    listed = await api.repos.carts.get(merchant_id, str(conv["_id"]))
    doc = cart_projection(
        merchant_id,
        str(conv["conversation_key"]),
        lines,
        updated_at=at or 0.0,
        customer_name=(listed or {}).get("customer_name"),
    )
    out = cart_out(doc)
    out["updated_at"] = at
    return out


async def get_cart(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    conv = await _conversation(ctx)
    state = await api.staff.state(ctx.merchant_id, conv)
    lines = clean_lines(state.get("cart") or [])
    return await _out(api, ctx.merchant_id, conv, lines, state.get("updated_at") or None)


async def put_cart(ctx: Ctx) -> dict[str, Any]:
    api = ctx.api
    body: s.CartIn = ctx.body
    conv = await _conversation(ctx)
    lines: list[dict[str, Any]] = []
    if body.items:
        try:
            priced = await api.commerce.price_lines(
                ctx.merchant_id, [i.model_dump() for i in body.items]
            )
        except CommerceError as exc:
            raise ProblemError(
                422,
                "Invalid cart",
                str(exc),
                errors=[{"field": "items", "message": str(exc)}],
            ) from exc
        lines = clean_lines(
            [
                {
                    "sku": p["sku"],
                    "title": p["title"],
                    "qty": p["qty"],
                    "price": p["unit_price"],
                    "currency": p["currency"],
                }
                for p in priced
            ]
        )
    now = time.time()
    kind = await channel_kind(api, ctx.merchant_id, str(conv.get("channel_id") or ""))
    await api.staff.set_cart(ctx.merchant_id, conv, kind, lines, now)
    return await _out(api, ctx.merchant_id, conv, lines, now)


CI = "/api/v1/conversations/{conversation_id}"
