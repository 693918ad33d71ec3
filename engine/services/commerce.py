"""Carts, orders and leads: the commerce records a conversation can create.

Why a separate module: the chat decides *when* to create an order, but what an order *is*
(its lines, its total, its customer) must not depend on anything the customer typed except the
SKUs, quantities and contact details. Prices always come from the merchant's catalogue
(``repos.products``), so "make it 1 riyal" in a chat can never change a total. Every record
carries ``merchant_id`` and every query is scoped by it (tenant isolation): the repositories
take it on every call.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any, Final

from engine.domain.text import normalize_digits
from engine.services.ports import Document
from engine.services.repositories import Repositories

MAX_LINES: Final = 50
MAX_QTY: Final = 99
MAX_NAME_CHARS: Final = 120
MAX_CITY_CHARS: Final = 80
MAX_NOTE_CHARS: Final = 1_000
ORDER_STATUSES: Final = ("new", "confirmed", "shipped", "delivered", "cancelled")


class CommerceError(ValueError):
    """A commerce request that cannot be honoured; the message is safe to show a merchant."""


class UnknownSku(CommerceError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"unknown sku: {sku!r}")
        self.sku = sku


class OutOfStock(CommerceError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"sku is out of stock: {sku!r}")
        self.sku = sku


class InvalidQuantity(CommerceError):
    """Quantities are whole numbers 1..MAX_QTY."""


class InvalidCustomer(CommerceError):
    """Name, phone or city missing or malformed."""


class EmptyOrder(CommerceError):
    """An order needs at least one line."""


_PHONE_RE: Final = re.compile(r"^\+?\d{7,15}$")


def normalize_phone(phone: str) -> str:
    """Digits (Arabic-Indic folded) with an optional leading ``+``; spaces/dashes dropped.

    Stored normalised so "٠٥٥ ١٢٣ ٤٥٦٧" and "0551234567" find the same orders.
    """
    text = normalize_digits(str(phone)).strip()
    plus = text.startswith("+") or text.startswith("00")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    return ("+" if plus else "") + digits


def valid_phone(phone: str) -> bool:
    return bool(_PHONE_RE.match(normalize_phone(phone)))


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _clean_customer(customer: dict[str, Any]) -> dict[str, str]:
    name = " ".join(str(customer.get("name") or "").split())
    city = " ".join(str(customer.get("city") or "").split())
    phone = normalize_phone(str(customer.get("phone") or ""))
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidCustomer(f"customer name is required (at most {MAX_NAME_CHARS} characters)")
    if not city or len(city) > MAX_CITY_CHARS:
        raise InvalidCustomer(f"customer city is required (at most {MAX_CITY_CHARS} characters)")
    if not _PHONE_RE.match(phone):
        raise InvalidCustomer("customer phone must have 7 to 15 digits")
    return {"name": name, "phone": phone, "city": city}


def _qty(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidQuantity("qty must be a whole number")
    try:
        number = float(normalize_digits(str(value)))
    except ValueError as exc:
        raise InvalidQuantity("qty must be a whole number") from exc
    if not number.is_integer() or not 1 <= number <= MAX_QTY:
        raise InvalidQuantity(f"qty must be a whole number from 1 to {MAX_QTY}")
    return int(number)


def _merge_lines(items: list[dict[str, Any]]) -> dict[str, int]:
    """SKU -> total quantity, keeping first-seen order; the same SKU twice is one line."""
    if not items:
        raise EmptyOrder("an order needs at least one item")
    if len(items) > MAX_LINES:
        raise CommerceError(f"an order has at most {MAX_LINES} lines")
    merged: dict[str, int] = {}
    for item in items:
        sku = str(item.get("sku") or "").strip()
        if not sku:
            raise UnknownSku(sku)
        merged[sku] = merged.get(sku, 0) + _qty(item.get("qty", 1))
        if merged[sku] > MAX_QTY:
            raise InvalidQuantity(f"qty must be a whole number from 1 to {MAX_QTY}")
    return merged


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
        merged = _merge_lines(items)
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
    ) -> Document:
        """Validate, price from the catalogue, store the order and its lead; return the order.

        Nothing is written when anything is invalid (all checks run before the first write).
        """
        contact = _clean_customer(customer)
        lines = await self.price_lines(merchant_id, items)
        currencies = {line["currency"] for line in lines if line["currency"]}
        now = time.time()
        order: Document = {
            "_id": _new_id("ord"),
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
        await self._repos.orders.create(dict(order))
        await self.create_lead(
            merchant_id,
            name=contact["name"],
            phone=contact["phone"],
            city=contact["city"],
            source=source,
            conversation_key=conversation_key,
            order_id=str(order["_id"]),
        )
        return order

    async def get_order(self, merchant_id: str, order_id: str) -> Document | None:
        return await self._repos.orders.get(merchant_id, str(order_id))

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
    ) -> Document:
        """A contact the merchant can follow up; phone (normalised) or name is required."""
        norm = normalize_phone(phone) if phone else ""
        if phone and not _PHONE_RE.match(norm):
            raise InvalidCustomer("lead phone must have 7 to 15 digits")
        clean_name = " ".join(str(name).split())[:MAX_NAME_CHARS]
        if not norm and not clean_name:
            raise InvalidCustomer("a lead needs a name or a phone")
        now = time.time()
        lead: Document = {
            "_id": _new_id("lead"),
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
        await self._repos.leads.create(dict(lead))
        return lead

    # -- staff updates -----------------------------------------------------------------------
    async def update_order_status(
        self, merchant_id: str, order_id: str, expected: str, status: str
    ) -> Document | None:
        """Compare-and-set on the status: a concurrent change makes this return None."""
        if status not in ORDER_STATUSES:
            raise CommerceError(f"unknown status {status!r}")
        return await self._repos.orders.set_status(
            merchant_id, str(order_id), expected, status, time.time()
        )
