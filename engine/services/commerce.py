"""Orders and leads, priced from the catalogue (the use case over the commerce rules).

Prices always come from the merchant's ``products``, so "make it 1 riyal" in a chat can never
change a total (``engine.domain.commerce`` says what a line and a customer may be). Every
record carries ``merchant_id`` and every query is scoped by it (tenant isolation).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Final

from engine.domain.commerce import (
    MAX_CITY_CHARS,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    ORDER_STATUSES,
    PHONE_RE,
    CommerceError,
    InvalidCustomer,
    OutOfStock,
    UnknownSku,
    clean_customer,
    merge_lines,
    normalize_phone,
)
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import Repositories
from observability import metrics


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _derived(prefix: str, request_id: str) -> str:
    """The same request always names the same record (ids look like ``_new_id``'s)."""
    return f"{prefix}_{hashlib.blake2b(request_id.encode(), digest_size=6).hexdigest()}"


# Orders a "where is my order?" answer looks at.
RECENT_ORDERS: Final = 20


class Commerce:
    """The rules for carts, orders and leads of every merchant, over the repositories."""

    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    async def ensure_indexes(self) -> None:
        await self._repos.ensure_indexes()

    # -- pricing -----------------------------------------------------------------------------
    async def price_lines(self, merchant_id: str, items: list[dict[str, Any]]) -> list[Document]:
        """Order lines priced from the catalogue: ``sku, title, qty, unit_price, currency,
        line_total``. Raises :class:`UnknownSku`/:class:`OutOfStock`/:class:`InvalidQuantity`."""
        merged = merge_lines(items)
        lines: list[Document] = []
        for sku, qty in merged.items():
            doc = await self._repos.products.by_sku(merchant_id, sku)
            if doc is None or doc.get("price") is None:
                raise UnknownSku(sku)
            if not bool(doc.get("in_stock", True)):
                raise OutOfStock(sku)
            unit = float(doc["price"])
            lines.append(
                {
                    "sku": sku,
                    "title": str(doc.get("title") or sku),
                    "qty": qty,
                    "unit_price": unit,
                    "currency": doc.get("currency"),
                    "line_total": round(unit * qty, 2),
                }
            )
        return lines

    # -- orders ------------------------------------------------------------------------------
    async def create_order(
        self,
        merchant_id: str,
        customer: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        source: str,
        conversation_key: str | None = None,
        request_id: str | None = None,
    ) -> Document:
        """Validate, price from the catalogue, store the order and its lead; return the order.

        Nothing is written when anything is invalid (all checks run before the first write).
        ``request_id`` names what asked for the order (an ``Idempotency-Key``, a chat turn's
        messages): the order and its lead are then named by it, so a request that runs again
        (a retried turn, a replay after a crash) finds the order it made instead of a second.
        """
        if request_id is not None:
            existing = await self._repos.orders.get(merchant_id, _derived("ord", request_id))
            if existing is not None:
                return existing
        contact = clean_customer(customer)
        lines = await self.price_lines(merchant_id, items)
        currencies = {line["currency"] for line in lines if line["currency"]}
        now = time.time()
        order: Document = {
            "_id": _derived("ord", request_id) if request_id else _new_id("ord"),
            "merchant_id": merchant_id,
            "status": "new",
            "customer": contact,
            "phone": contact["phone"],
            "items": lines,
            "total": round(sum(float(line["line_total"]) for line in lines), 2),
            "currency": next(iter(currencies)) if len(currencies) == 1 else None,
            "source": str(source)[:40],
            "conversation_key": conversation_key,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._repos.orders.create(dict(order))
        except DuplicateKey:  # the same request, concurrently: its order stands
            found = await self._repos.orders.get(merchant_id, str(order["_id"]))
            if found is None:
                raise
            return found
        metrics.ORDERS.labels("new").inc()  # counted once: a replayed request returned above
        await self.create_lead(
            merchant_id,
            name=contact["name"],
            phone=contact["phone"],
            city=contact["city"],
            source=source,
            conversation_key=conversation_key,
            order_id=str(order["_id"]),
            lead_id=_derived("lead", request_id) if request_id else None,
        )
        return order

    async def get_order(self, merchant_id: str, order_id: str) -> Document | None:
        return await self._repos.orders.get(merchant_id, str(order_id))

    async def orders_by_platform_number(self, merchant_id: str, number: str) -> list[Document]:
        """A store platform's orders with this number (the caller checks the phone)."""
        return await self._repos.orders.by_platform_number(merchant_id, str(number), limit=5)

    async def orders_for_phone(self, merchant_id: str, phone: str) -> list[Document]:
        """Newest first; phones are compared in normalised form."""
        return await self._repos.orders.for_phone(
            merchant_id, normalize_phone(phone), limit=RECENT_ORDERS
        )

    async def orders_for_conversation(
        self, merchant_id: str, conversation_key: str
    ) -> list[Document]:
        """Newest first: lets "where is my order?" work without asking for the phone again."""
        return await self._repos.orders.for_conversation(
            merchant_id, conversation_key, limit=RECENT_ORDERS
        )

    # -- leads -------------------------------------------------------------------------------
    async def create_lead(
        self,
        merchant_id: str,
        *,
        name: str = "",
        phone: str = "",
        city: str = "",
        source: str = "chat",
        conversation_key: str | None = None,
        order_id: str | None = None,
        note: str = "",
        lead_id: str | None = None,
    ) -> Document:
        """A contact the merchant can follow up; phone (normalised) or name is required."""
        norm = normalize_phone(phone) if phone else ""
        if phone and not PHONE_RE.match(norm):
            raise InvalidCustomer("lead phone must have 7 to 15 digits")
        clean_name = " ".join(str(name).split())[:MAX_NAME_CHARS]
        if not norm and not clean_name:
            raise InvalidCustomer("a lead needs a name or a phone")
        now = time.time()
        lead: Document = {
            "_id": lead_id or _new_id("lead"),
            "merchant_id": merchant_id,
            "name": clean_name,
            "phone": norm,
            "city": " ".join(str(city).split())[:MAX_CITY_CHARS],
            "source": str(source)[:40],
            "conversation_key": conversation_key,
            "order_id": order_id,
            "note": str(note)[:MAX_NOTE_CHARS],
            "status": "new",
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._repos.leads.create(dict(lead))
        except DuplicateKey:
            if lead_id is None:
                raise
            return await self._repos.leads.get(merchant_id, lead_id) or lead
        return lead

    # -- staff updates --------------------------------------------------------------------
    async def update_order_status(
        self, merchant_id: str, order_id: str, expected: str, status: str
    ) -> Document | None:
        """Compare-and-set on the status: a concurrent change makes this return None."""
        if status not in ORDER_STATUSES:
            raise CommerceError(f"unknown status {status!r}")
        changed = await self._repos.orders.set_status(
            merchant_id, str(order_id), expected, status, time.time()
        )
        if changed is not None and expected != status:
            metrics.ORDERS.labels(status).inc()
        return changed
