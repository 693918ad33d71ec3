"""Carts through the admin API on the session engine: staff edits the bot honours, the list."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from engine.adapters.records import conversation_id
from tests.api.test_admin_api import Tenant, call, make_tenant
from tests.conftest import Engine, Store

pytestmark = pytest.mark.integration


async def _conversation(engine: Engine, tenant: Tenant, customer: str) -> str:
    """A playground conversation with a checkpoint, as a customer would start one."""
    assert (await engine.ask(tenant.api_key, "hello", customer=customer))["text"]
    cid = conversation_id(f"{tenant.merchant_id}:playground:{customer}")
    for _ in range(200):  # the summary is written off the reply path
        status, _, _ = await call(engine, "GET", f"/api/v1/conversations/{cid}", tenant.api_key)
        if status == 200:
            return cid
        await asyncio.sleep(0.05)
    raise AssertionError("conversation never recorded")


async def _listed(engine: Engine, token: str, cid: str, present: bool) -> dict[str, Any] | None:
    """Poll the carts list (a projection written after the turn commits) for one cart."""
    for _ in range(200):
        status, page, _ = await call(engine, "GET", "/api/v1/carts?limit=100", token)
        assert status == 200
        found = [c for c in page["items"] if c["conversation_id"] == cid]
        if bool(found) == present:
            return found[0] if found else None
        await asyncio.sleep(0.05)
    raise AssertionError(f"cart {cid} never {'listed' if present else 'unlisted'}")


async def test_staff_cart_edit_is_priced_ordered_with_the_bot_and_listed(engine: Engine) -> None:
    t = await make_tenant(engine, "Cart shop")
    admin, agent, viewer = t.tokens["admin"], t.tokens["agent"], t.tokens["viewer"]
    for sku, title, price in (("mug-1", "Blue mug", 12.5), ("tea-9", "Green tea", 30)):
        status, _, _ = await call(
            engine,
            "POST",
            "/api/v1/products",
            admin,
            {"sku": sku, "title": title, "price": price, "currency": "SAR"},
        )
        assert status == 201
    customer = "cart-" + secrets.token_hex(3)
    cid = await _conversation(engine, t, customer)
    path = f"/api/v1/conversations/{cid}/cart"

    status, empty, _ = await call(engine, "GET", path, viewer)
    assert status == 200 and empty["items"] == [] and empty["total"] == 0
    status, _, _ = await call(engine, "PUT", path, viewer, {"items": []})
    assert status == 403  # viewers read, never write
    status, bad, _ = await call(engine, "PUT", path, agent, {"items": [{"sku": "nope", "qty": 1}]})
    assert status == 422 and bad["errors"][0]["field"] == "items" and "nope" in bad["detail"]
    status, bad, _ = await call(engine, "PUT", path, agent, {"items": [{"sku": "mug-1", "qty": 0}]})
    assert status == 422 and bad["errors"][0]["field"].startswith("items.0.qty")

    status, cart, _ = await call(
        engine,
        "PUT",
        path,
        agent,
        {"items": [{"sku": "mug-1", "qty": 2}, {"sku": "tea-9"}, {"sku": "mug-1", "qty": 1}]},
    )
    assert status == 200, cart
    assert [(i["sku"], i["title"], i["qty"], i["line_total"]) for i in cart["items"]] == [
        ("mug-1", "Blue mug", 3, 37.5),
        ("tea-9", "Green tea", 1, 30.0),
    ]
    assert cart["total"] == 67.5 and cart["currency"] == "SAR" and cart["item_count"] == 4
    status, got, _ = await call(engine, "GET", path, viewer)
    assert got["items"] == cart["items"]

    # The bot sees the staff's cart: the edit travelled through the conversation's inbox.
    shown = await engine.ask(t.api_key, "show my cart", customer=customer)
    assert shown["intent"] == "view_cart"
    assert "Blue mug" in shown["text"] and "Green tea" in shown["text"] and "67.5" in shown["text"]

    listed = await _listed(engine, viewer, cid, present=True)
    assert listed is not None
    assert listed["customer_id"] == customer and listed["channel_id"] == "playground"
    assert listed["total"] == 67.5 and [i["sku"] for i in listed["items"]] == ["mug-1", "tea-9"]

    # Keyset pages: a second cart, one per page, each exactly once.
    other = await _conversation(engine, t, "cart-" + secrets.token_hex(3))
    status, _, _ = await call(
        engine,
        "PUT",
        f"/api/v1/conversations/{other}/cart",
        t.api_key,
        {"items": [{"sku": "tea-9", "qty": 2}]},
    )
    assert status == 200
    await _listed(engine, viewer, other, present=True)
    _, first, _ = await call(engine, "GET", "/api/v1/carts?limit=1", viewer)
    _, second, _ = await call(
        engine, "GET", f"/api/v1/carts?limit=1&cursor={first['next_cursor']}", viewer
    )
    assert {first["items"][0]["conversation_id"], second["items"][0]["conversation_id"]} == {
        cid,
        other,
    }
    status, _, _ = await call(engine, "GET", "/api/v1/carts?cursor=@@", viewer)
    assert status == 422

    # Clearing: the cart is empty for the bot and leaves the list.
    status, cleared, _ = await call(engine, "PUT", path, agent, {"items": []})
    assert status == 200 and cleared["items"] == [] and cleared["total"] == 0
    await _listed(engine, viewer, cid, present=False)
    empty_view = await engine.ask(t.api_key, "show my cart", customer=customer)
    assert "empty" in empty_view["text"].lower()


async def test_a_cart_the_bot_fills_appears_in_the_list(engine: Engine, demo_store: Store) -> None:
    customer = "botcart-" + secrets.token_hex(3)
    found = await engine.ask(demo_store.api_key, "do you have oud perfume?", customer=customer)
    assert found["products"], found
    added = await engine.ask(demo_store.api_key, "add the first one to my cart", customer=customer)
    assert added["intent"] == "add_to_cart", added
    cid = conversation_id(f"{demo_store.merchant_id}:playground:{customer}")
    listed = await _listed(engine, demo_store.api_key, cid, present=True)
    assert listed is not None
    assert [i["sku"] for i in listed["items"]] == [found["products"][0]["sku"]]
    status, cart, _ = await call(
        engine, "GET", f"/api/v1/conversations/{cid}/cart", demo_store.api_key
    )
    assert status == 200 and cart["items"] == listed["items"]
