"""Orders and leads over the embedded record store (the real SQLite adapter, on a tmp file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.adapters.repositories import sqlite_repositories
from engine.domain.commerce import (
    EmptyOrder,
    InvalidCustomer,
    InvalidQuantity,
    OutOfStock,
    UnknownSku,
    normalize_phone,
)
from engine.services.commerce import Commerce

CUSTOMER = {"name": " Sara  Ahmed ", "phone": "+966 55 123 4567", "city": "Jeddah"}


@pytest.fixture
async def commerce(tmp_path: Path) -> Commerce:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    for merchant, sku, price, stock in [
        ("m1", "A", 100.0, True),
        ("m1", "B", 49.5, True),
        ("m1", "Z", 10.0, False),
        ("m2", "A", 1.0, True),
    ]:
        await repos.products.create(
            {
                "_id": f"{merchant}:{sku}",
                "merchant_id": merchant,
                "sku": sku,
                "title": f"Item {sku}",
                "price": price,
                "currency": "SAR",
                "in_stock": stock,
            }
        )
    c = Commerce(repos)
    await c.ensure_indexes()
    return c


async def test_order_total_comes_from_the_merchants_catalogue(commerce: Commerce) -> None:
    order = await commerce.create_order(
        "m1",
        {**CUSTOMER, "price": 1},
        [{"sku": "A", "qty": 2}, {"sku": "B", "qty": "١"}, {"sku": "A", "qty": 1, "price": 0}],
        source="chat",
        conversation_key="conv-1",
    )
    assert order["total"] == 349.5
    assert [(i["sku"], i["qty"], i["unit_price"]) for i in order["items"]] == [
        ("A", 3, 100.0),
        ("B", 1, 49.5),
    ]
    assert order["customer"] == {"name": "Sara Ahmed", "phone": "+966551234567", "city": "Jeddah"}
    stored = await commerce.get_order("m1", order["_id"])
    assert stored is not None and stored["total"] == 349.5
    assert await commerce.get_order("m2", order["_id"]) is None  # tenant isolation
    assert [o["_id"] for o in await commerce.orders_for_phone("m1", "00966551234567")] == [
        order["_id"]
    ]
    assert await commerce.orders_for_phone("m2", "+966551234567") == []
    assert [o["_id"] for o in await commerce.orders_for_conversation("m1", "conv-1")] == [
        order["_id"]
    ]


async def test_bad_orders_raise_clear_errors_and_write_nothing(commerce: Commerce) -> None:
    cases = [
        ([{"sku": "NOPE", "qty": 1}], CUSTOMER, UnknownSku),
        ([{"sku": "A", "qty": 0}], CUSTOMER, InvalidQuantity),
        ([{"sku": "A", "qty": 1.5}], CUSTOMER, InvalidQuantity),
        ([{"sku": "A", "qty": 100}], CUSTOMER, InvalidQuantity),
        ([{"sku": "Z", "qty": 1}], CUSTOMER, OutOfStock),
        ([], CUSTOMER, EmptyOrder),
        ([{"sku": "A", "qty": 1}], {**CUSTOMER, "phone": "12"}, InvalidCustomer),
        ([{"sku": "A", "qty": 1}], {**CUSTOMER, "city": " "}, InvalidCustomer),
    ]
    for items, customer, error in cases:
        with pytest.raises(error):
            await commerce.create_order("m1", customer, items, source="api")
    # another merchant's SKU is unknown here
    with pytest.raises(UnknownSku):
        await commerce.create_order("m2", CUSTOMER, [{"sku": "B", "qty": 1}], source="api")
    assert await commerce.orders_for_phone("m1", CUSTOMER["phone"]) == []


async def test_lead_is_created_with_the_order_and_on_its_own(commerce: Commerce) -> None:
    order = await commerce.create_order("m1", CUSTOMER, [{"sku": "B", "qty": 2}], source="chat")
    lead = await commerce.create_lead("m1", name="Omar", phone="٠٥٥٥٥٥٥٥٥٥", source="chat")
    assert lead["phone"] == "0555555555" and lead["merchant_id"] == "m1"
    with pytest.raises(InvalidCustomer):
        await commerce.create_lead("m1")
    assert order["total"] == 99.0


def test_phone_normalisation() -> None:
    assert normalize_phone("٠٥٥ ١٢٣-٤٥٦٧") == "0551234567"
    assert normalize_phone("00966 55 1234567") == "+966551234567"
