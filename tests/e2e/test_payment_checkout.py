"""Checkout in chat, paid, on the real engine (Ray, Serve, models, Redis, SQLite, the gateway on
loopback) with a fake Moyasar that speaks Moyasar's wire format.

A webchat customer finds a product, adds it to the cart and checks out; the bot's reply
carries the order's payment link (an invoice at the fake Moyasar). Moyasar's paid webhook
confirms the order and the customer's widget receives the confirmation — exactly once,
whether the provider redelivers, or the process that recorded the webhook died before it
applied it (the gateways' periodic sweep applies what a dead process recorded).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from engine.adapters.payments import PaymentClient
from engine.adapters.redis.live_events import RedisLiveEvents
from engine.adapters.redis.queues import Outbox
from engine.adapters.redis.server import redis_client
from engine.adapters.secrets import SecretBox
from engine.services.payments import Payments
from tests.conftest import Engine
from tests.fakes.fake_moyasar import FakeMoyasar
from tests.gateways import api_call
from tests.webchat_client import new_session, next_frame, socket_url

pytestmark = pytest.mark.integration

PAID = "Payment received"
LINK = re.compile(r"https://checkout\.moyasar\.com/invoices/([\w-]+)")
CATALOG = orjson.dumps(
    {
        "sku": "RUN-1",
        "title": "AirFlow Running Shoes",
        "description": "Light running shoes with a breathable mesh upper",
        "category": "shoes",
        "price": 289.0,
        "currency": "SAR",
        "in_stock": True,
    }
)


@pytest.fixture(scope="module")
async def moyasar() -> AsyncIterator[FakeMoyasar]:
    fake = FakeMoyasar()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def shop(engine: Engine, moyasar: FakeMoyasar) -> tuple[str, str]:
    """A merchant with one product and Moyasar connected: (merchant id, api key)."""
    merchant_id, key = await engine.create_merchant("Pay Shop", "en")
    job = await engine.import_and_wait(key, "/api/v1/catalog/import", CATALOG + b"\n")
    assert job["status"] == "done", job
    provider = {
        "kind": "moyasar",
        "secret_key": moyasar.secret_key,
        "webhook_secret": moyasar.webhook_secret,
        "api_base": moyasar.base_url,
    }
    url = f"{engine.base_url}/api/v1/payments/provider"
    status, out = await api_call(engine.session, "PUT", url, key, provider)
    assert status == 200, out
    moyasar.webhook_url = str(out["webhook_url"])  # what the merchant types into Moyasar
    return merchant_id, key


async def _say(ws: aiohttp.ClientWebSocketResponse, frame_id: str, text: str) -> str:
    """One customer message; the bot's reply to it."""
    await ws.send_json({"type": "message", "id": frame_id, "text": text})
    while True:
        frame = await ws.receive_json(timeout=60)
        assert frame.get("type") != "error", frame
        if frame.get("type") == "reply":
            return str(frame["text"])


async def _checkout(ws: aiohttp.ClientWebSocketResponse, tag: str) -> tuple[str, str]:
    """Buy the shoes in chat: (order id, invoice id of the link in the bot's reply)."""
    await next_frame(ws, "history", 10)
    await ws.send_json({"type": "message", "id": f"{tag}-1", "text": "running shoes"})
    found = await next_frame(ws, "reply", 60)
    assert [p["title"] for p in found["products"]][:1] == ["AirFlow Running Shoes"], found
    assert "289" in await _say(ws, f"{tag}-2", "add it to my cart")
    await _say(ws, f"{tag}-3", "checkout")
    await _say(ws, f"{tag}-4", "My name is Sara Ahmed")
    await _say(ws, f"{tag}-5", "0559876543")
    placed = await _say(ws, f"{tag}-6", "Riyadh")
    link = LINK.search(placed)
    order = re.search(r"\bord_\w+", placed)
    assert link and order, placed
    return order.group(0), link.group(1)


async def _order_status(engine: Engine, key: str, order_id: str) -> str:
    url = f"{engine.base_url}/api/v1/orders/{order_id}"
    status, order = await api_call(engine.session, "GET", url, key)
    assert status == 200, order
    return str(order["status"])


async def _history_texts(engine: Engine, url: str) -> list[str]:
    async with engine.session.ws_connect(url) as ws:
        history = (await next_frame(ws, "history", 10))["messages"]
    return [str(m.get("text") or "") for m in history if m.get("direction") == "out"]


async def test_the_paid_webhook_confirms_the_order_and_tells_the_customer_once(
    engine: Engine, moyasar: FakeMoyasar, shop: tuple[str, str]
) -> None:
    merchant_id, key = shop
    chat = await new_session(engine.session, engine.base_url, merchant_id)
    url = socket_url(engine.base_url, merchant_id, chat["token"])
    async with engine.session.ws_connect(url) as ws:
        order_id, invoice_id = await _checkout(ws, "pay")
        assert await _order_status(engine, key, order_id) == "new"
        assert moyasar.invoices[invoice_id].amount == 28900  # the order's total, in halalas

        body = moyasar.event(invoice_id)
        assert await moyasar.deliver(body) == 200
        told = await next_frame(ws, "reply", 60)
        assert told["text"] == f"Payment received ✅ Your order {order_id} is confirmed. Thank you!"
        assert await moyasar.deliver(body) == 200  # Moyasar redelivers
        # A later turn is answered after anything the redelivery could have enqueued.
        await _say(ws, "pay-7", "thanks")

    assert await _order_status(engine, key, order_id) == "confirmed"
    assert [t for t in await _history_texts(engine, url) if PAID in t] == [told["text"]]


async def test_a_webhook_recorded_by_a_process_that_died_is_applied_once(
    engine: Engine, moyasar: FakeMoyasar, shop: tuple[str, str]
) -> None:
    merchant_id, key = shop
    chat = await new_session(engine.session, engine.base_url, merchant_id)
    url = socket_url(engine.base_url, merchant_id, chat["token"])
    async with engine.session.ws_connect(url) as ws:
        order_id, invoice_id = await _checkout(ws, "crash")
    body = moyasar.event(invoice_id)

    # A gateway verified and recorded this webhook two minutes ago, then died before its
    # effects (and before its 200): the engine's own code on the engine's own stores.
    await _record_and_die(engine, merchant_id, body, recorded_at=time.time() - 120)
    assert await _order_status(engine, key, order_id) == "new"

    # The running gateways' sweep applies it; the customer's widget is told.
    async with engine.session.ws_connect(url) as ws:
        await next_frame(ws, "history", 10)
        told = await next_frame(ws, "reply", 60)
        assert PAID in told["text"] and order_id in told["text"]
        # Moyasar, never having had a 200, redelivers: nothing more happens.
        assert await moyasar.deliver(body) == 200
        await _say(ws, "crash-7", "thanks")
    assert await _order_status(engine, key, order_id) == "confirmed"
    assert len([t for t in await _history_texts(engine, url) if PAID in t]) == 1
    payment_id = moyasar.invoices[invoice_id].metadata["payment_id"]
    status, payment = await api_call(
        engine.session, "GET", f"{engine.base_url}/api/v1/payments/{payment_id}", key
    )
    assert status == 200 and payment["status"] == "paid"


async def _record_and_die(
    engine: Engine, merchant_id: str, body: bytes, recorded_at: float
) -> None:
    s = engine.runtime.settings
    redis = redis_client(s.redis_url)
    records = engine.runtime.records
    dying = Payments(
        records.repos,
        PaymentClient(allow_private=True),
        SecretBox(s.secret_key),
        Outbox(redis),
        records,
        RedisLiveEvents(redis),
        records,
        base_url=engine.base_url,
        clock=lambda: recorded_at,
    )
    try:
        outcome, event = await dying.receive("moyasar", merchant_id, {}, body)
        assert outcome == "recorded" and event is not None
    finally:
        await dying.close()
        await redis.aclose()
