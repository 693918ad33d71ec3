"""Commerce rules: what an order line, a customer and a quantity may be.

Why rules of their own: the chat decides *when* to create an order, but what an order *is*
(its lines, its total, its customer) must not depend on anything the customer typed except the
SKUs, quantities and contact details; prices come from the catalogue (``services.commerce``).
Errors are ``CommerceError`` subclasses whose messages are safe to show a merchant.
"""

from __future__ import annotations

import re
from typing import Any, Final

from engine.domain.text import normalize_digits

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


PHONE_RE: Final = re.compile(r"^\+?\d{7,15}$")


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


def clean_customer(customer: dict[str, Any]) -> dict[str, str]:
    name = " ".join(str(customer.get("name") or "").split())
    city = " ".join(str(customer.get("city") or "").split())
    phone = normalize_phone(str(customer.get("phone") or ""))
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidCustomer(f"customer name is required (at most {MAX_NAME_CHARS} characters)")
    if not city or len(city) > MAX_CITY_CHARS:
        raise InvalidCustomer(f"customer city is required (at most {MAX_CITY_CHARS} characters)")
    if not PHONE_RE.match(phone):
        raise InvalidCustomer("customer phone must have 7 to 15 digits")
    return {"name": name, "phone": phone, "city": city}


def quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidQuantity("qty must be a whole number")
    try:
        number = float(normalize_digits(str(value)))
    except ValueError as exc:
        raise InvalidQuantity("qty must be a whole number") from exc
    if not number.is_integer() or not 1 <= number <= MAX_QTY:
        raise InvalidQuantity(f"qty must be a whole number from 1 to {MAX_QTY}")
    return int(number)


def merge_lines(items: list[dict[str, Any]]) -> dict[str, int]:
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
        merged[sku] = merged.get(sku, 0) + quantity(item.get("qty", 1))
        if merged[sku] > MAX_QTY:
            raise InvalidQuantity(f"qty must be a whole number from 1 to {MAX_QTY}")
    return merged
