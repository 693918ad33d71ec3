"""Carts as staff see them: lines, totals, the staff-edit control and the listable projection.

The cart itself lives in the conversation's checkpoint (``ConversationState.cart``): the bot
reads and changes it every turn, so that is the one source of truth. Staff change it through
a control message in the conversation's own inbox (ordered with the customer's messages, never
lost: the inbox is durable). Listing every non-empty cart of a merchant cannot scan Redis
checkpoints, so the conversation host keeps a ``carts`` projection in the records after
each turn that touched a cart (``services.projections``): merchant-scoped and keyset-paginated
like every other list. Pure: the domain (``engine.domain.conversation``) imports this module.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

# Same bound as the bot's own cart (engine.domain.conversation.CART_MAX_LINES).
MAX_LINES: Final = 20
MAX_QTY: Final = 99
CART_CONTROL: Final = "cart"

__all__ = [
    "CART_CONTROL",
    "MAX_LINES",
    "cart_items",
    "cart_total",
    "clean_lines",
    "decode_control",
    "encode_control",
]


def _price(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def clean_lines(raw: Any) -> list[dict[str, Any]]:
    """The bot's line shape (sku, title, qty, price, currency), bounded and typed.

    Control payloads only come from the admin API, but a checkpoint is read back by every
    future turn, so nothing malformed may get into it.
    """
    if not isinstance(raw, list):
        return []
    lines: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict) or not str(item.get("sku") or "").strip():
            continue
        qty = item.get("qty")
        qty = qty if isinstance(qty, int) and not isinstance(qty, bool) else 1
        currency = item.get("currency")
        lines.append(
            {
                "sku": str(item["sku"])[:128],
                "title": str(item.get("title") or item["sku"])[:200],
                "qty": min(max(qty, 1), MAX_QTY),
                "price": _price(item.get("price")),
                "currency": str(currency)[:8] if currency else None,
            }
        )
        if len(lines) >= MAX_LINES:
            break
    return lines


def encode_control(lines: list[dict[str, Any]]) -> str:
    return orjson.dumps({"items": clean_lines(lines)}).decode()


def decode_control(text: str) -> list[dict[str, Any]] | None:
    """The cart a staff edit sets, or None when the payload is unreadable (then ignored)."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        return None
    return clean_lines(data["items"])


def cart_total(lines: list[dict[str, Any]]) -> tuple[float, str | None]:
    total = sum((_price(i.get("price")) or 0.0) * int(i.get("qty") or 1) for i in lines)
    currencies = {i.get("currency") for i in lines if i.get("currency")}
    return round(total, 2), (next(iter(currencies)) if len(currencies) == 1 else None)


def cart_items(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for line in clean_lines(lines):
        unit = line["price"]
        line_total = round((unit or 0.0) * line["qty"], 2)
        out.append({**line, "line_total": line_total})
    return out
