"""Payments end to end, against fake Moyasar and Tap servers on loopback that speak their
real wire format: a payment link for an order, the provider's paid webhook confirming the
order and telling the customer in Telegram exactly once (also after a crash between the
recorded webhook and its effects), redelivered events, bad secrets, refunds, and the
Idempotency-Key rules of both write routes. Real gateway app, real Redis, SQLite records."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from connectors import registry
from connectors.base import SendLimits
from engine.adapters.payments import PaymentClient
from engine.adapters.providers import ChannelSender
from engine.adapters.redis import keys
from engine.adapters.redis.idempotency import IdempotencyStore
from engine.adapters.redis.live_events import RedisLiveEvents
from engine.adapters.redis.queues import Outbox, StreamConsumer
from engine.adapters.redis.ratelimits import RedisRateLimiter
from engine.adapters.secrets import SecretBox
from engine.domain.messages import OutboundReply, conversation_key
from engine.services.commerce import Commerce
from engine.services.delivery import DeliveryWorker
from engine.services.payments import Payments
from tests.channels.harness import Gateway, gateway_fixture
from tests.fakes.fake_moyasar import FakeMoyasar
from tests.fakes.fake_tap import FakeTap
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram
from tests.gateways import api_call

gw = gateway_fixture("payments-gw")
_chats = itertools.count(700_001)


@dataclass
class Shop:
    merchant_id: str
    key: str
    channel_id: str
    provider: str


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture(scope="module")
async def moyasar() -> AsyncIterator[FakeMoyasar]:
    fake = FakeMoyasar()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def tap() -> AsyncIterator[FakeTap]:
    fake = FakeTap()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def telegram_delivery(gw: Gateway, tg: FakeTelegram) -> AsyncIterator[None]:
    """The Telegram delivery worker, as a conversation host runs it."""
    session = aiohttp.ClientSession()
    kind = registry.KINDS["telegram"]
    worker = DeliveryWorker(
        StreamConsumer(gw.redis, [keys.outbox_stream("telegram")], keys.OUTBOX_GROUP, "t"),
        Outbox(gw.redis),
        ChannelSender(kind, session, gw.records, allow_private=True),
        RedisRateLimiter(gw.redis, "telegram", kind.send_rules(SendLimits(telegram_per_chat=50))),
        max_attempts=4,
    )
    task = asyncio.create_task(worker.run())
    yield
    await worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await session.close()


async def _shop(
    gw: Gateway, http: aiohttp.ClientSession, tg: FakeTelegram, provider: str, api_base: str
) -> Shop:
    merchant_id, key = await gw.records.create_merchant(f"{provider} shop", "en")
    channel_id = await gw.records.create_channel(
        merchant_id, "telegram", tg.base_url, DEFAULT_TOKEN, "tg-secret-123"
    )
    await gw.records.repos.products.create(
        {
            "_id": f"{merchant_id}-p1",
            "merchant_id": merchant_id,
            "sku": "S-1",
            "title": "AirFlow Running Shoes",
            "price": 289.0,
            "currency": "SAR",
            "in_stock": True,
            "updated_at": time.time(),
        }
    )
    body: dict[str, Any] = {"kind": provider, "api_base": api_base}
    if provider == "moyasar":
        body |= {"secret_key": FakeMoyasar.secret_key, "webhook_secret": FakeMoyasar.webhook_secret}
    else:
        body |= {"secret_key": FakeTap.secret_key}
    status, out = await api_call(http, "PUT", f"{gw.base_url}/api/v1/payments/provider", key, body)
    assert status == 200, out
    assert out["webhook_url"].endswith(f"/webhooks/payments/{provider}/{merchant_id}")
    assert set(out["credentials"]) >= {"secret_key"}
    assert FakeTap.secret_key not in orjson.dumps(out).decode()  # masked, never echoed
    return Shop(merchant_id, key, channel_id, provider)


async def _order_in_chat(gw: Gateway, shop: Shop) -> tuple[str, str]:
    """A customer's order placed in a Telegram conversation: (order id, chat id)."""
    chat = str(next(_chats))
    key = conversation_key(shop.merchant_id, shop.channel_id, chat)
    await gw.records.record_message(
        shop.merchant_id,
        {
            "_id": f"in:{chat}",
            "conversation_key": key,
            "direction": "in",
            "text": "I'll take the shoes",
            "at": time.time(),
        },
    )
    order = await Commerce(gw.records.repos).create_order(
        shop.merchant_id,
        {"name": "Sara", "phone": "+966500000001", "city": "Riyadh"},
        [{"sku": "S-1", "qty": 1}],
        source="chat",
        conversation_key=key,
        request_id=f"turn-{chat}",
    )
    return str(order["_id"]), chat


async def _pay_link(
    gw: Gateway, http: aiohttp.ClientSession, shop: Shop, order_id: str
) -> dict[str, Any]:
    status, out = await api_call(
        http,
        "POST",
        f"{gw.base_url}/api/v1/payments",
        shop.key,
        {"order_id": order_id},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 201, out
    return dict(out)


async def _order_status(gw: Gateway, shop: Shop, order_id: str) -> str:
    order = await gw.records.repos.orders.get(shop.merchant_id, order_id)
    assert order is not None
    return str(order["status"])


async def _settle_outbox(gw: Gateway, tg: FakeTelegram, shop: Shop, chat: str) -> list[str]:
    """Everything enqueued for this chat so far has been sent (a marker reply sent after it
    arrived, in the chat's order): the texts the customer got before the marker."""
    before = len(tg.sent_to(chat))
    await Outbox(gw.redis).enqueue(
        OutboundReply(
            outbox_id=f"marker-{uuid.uuid4().hex}",
            merchant_id=shop.merchant_id,
            channel_id=shop.channel_id,
            channel_kind="telegram",
            customer_id=chat,
            text="marker",
            intent="agent",
            handoff=False,
            in_reply_to=(),
            received_at=time.time(),
        )
    )
    sent = await tg.wait_for_messages(chat, before + 1, timeout=20)
    texts = [str(m.get("text")) for m in sent]
    assert texts[-1] == "marker"
    return [t for t in texts if t != "marker"]


async def _next_event(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The first live event of ``kind`` an agent's socket receives."""
    for _ in range(50):
        event = await ws.receive_json(timeout=10)
        if event.get("type") == kind:
            return dict(event)
    raise AssertionError(f"no {kind} event")


def _restarted(gw: Gateway) -> Payments:
    """The payments service of a freshly started process over the same stores."""
    return Payments(
        gw.records.repos,
        PaymentClient(allow_private=True),
        SecretBox(gw.settings.secret_key),
        Outbox(gw.redis),
        gw.records,
        RedisLiveEvents(gw.redis),
        gw.records,
        base_url=gw.base_url,
    )


def _payment_url(gw: Gateway, payment: dict[str, Any]) -> str:
    return f"{gw.base_url}/api/v1/payments/{payment['id']}"


def _webhook_url(gw: Gateway, shop: Shop) -> str:
    return f"{gw.base_url}/webhooks/payments/{shop.provider}/{shop.merchant_id}"


class Provider:
    """The fake of one provider behind a common face: pay, deliver, and build a body."""

    def __init__(self, name: str, moyasar: FakeMoyasar, tap: FakeTap, gw: Gateway) -> None:
        self.name, self.moyasar, self.tap, self.gw = name, moyasar, tap, gw

    @property
    def base_url(self) -> str:
        return self.moyasar.base_url if self.name == "moyasar" else self.tap.base_url

    def ref_of(self, payment: dict[str, Any]) -> str:
        if self.name == "moyasar":
            (inv,) = [
                i
                for i in self.moyasar.invoices.values()
                if i.metadata["payment_id"] == payment["id"]
            ]
            return inv.id
        (charge,) = [
            c for c in self.tap.charges.values() if c.metadata["payment_id"] == payment["id"]
        ]
        return charge.id

    def paid(self, ref: str, *, forged: bool = False) -> tuple[bytes, dict[str, str]]:
        if self.name == "moyasar":
            token = "not-the-webhook-secret" if forged else ""
            return self.moyasar.event(ref, token=token), {"Content-Type": "application/json"}
        body, hashstring = self.tap.event(ref)
        if forged:
            hashstring = self.tap.hash_of(orjson.loads(body), key="sk_test_someone_else")
        return body, {"Content-Type": "application/json", "hashstring": hashstring}

    def refunded(
        self, ref: str, *, dashboard_minor: int = 0, refund_id: str = ""
    ) -> tuple[bytes, dict[str, str]]:
        """The refund webhook: of a refund made in the provider's dashboard
        (``dashboard_minor``), or of the one the refund API answered ``refund_id`` for."""
        if self.name == "moyasar":
            if dashboard_minor:
                self.moyasar.dashboard_refund(ref, dashboard_minor)
            body = self.moyasar.event(ref, "payment_refunded")
            return body, {"Content-Type": "application/json"}
        amount = Decimal(dashboard_minor) / 100 if dashboard_minor else None
        body, hashstring = self.tap.refund_event(ref, refund_id=refund_id, amount=amount)
        return body, {"Content-Type": "application/json", "hashstring": hashstring}

    async def deliver(self, shop: Shop, body: bytes, headers: dict[str, str]) -> int:
        url = _webhook_url(self.gw, shop)
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=headers) as r,
        ):
            await r.read()
            return r.status


@pytest.fixture(params=["moyasar", "tap"])
def provider(
    request: pytest.FixtureRequest, moyasar: FakeMoyasar, tap: FakeTap, gw: Gateway
) -> Provider:
    return Provider(str(request.param), moyasar, tap, gw)


PAID_TEXT = "Payment received"


async def test_checkout_link_then_paid_webhook_confirms_and_tells_the_customer_once(
    gw: Gateway,
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    provider: Provider,
    telegram_delivery: None,
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, chat = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    assert link["status"] == "initiated" and link["url"].startswith("https://")
    assert (link["amount_minor"], link["currency"]) == (28900, "SAR")  # from the order
    again = await _pay_link(gw, http, shop, order_id)  # another key, the same order
    assert again["id"] == link["id"] and again["url"] == link["url"]
    ref = provider.ref_of(link)

    body, headers = provider.paid(ref)
    live_url = gw.base_url.replace("http", "ws", 1) + "/api/v1/live"
    async with http.ws_connect(live_url) as ws:
        await ws.send_json({"type": "auth", "token": shop.key})
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        assert await provider.deliver(shop, body, headers) == 200
        event = await _next_event(ws, "payment.paid")
    assert event["data"]["order_id"] == order_id and event["data"]["amount_minor"] == 28900
    assert await _order_status(gw, shop, order_id) == "confirmed"
    assert await provider.deliver(shop, body, headers) == 200  # the provider redelivers
    texts = await _settle_outbox(gw, tg, shop, chat)
    assert [t for t in texts if PAID_TEXT in t] == [
        f"Payment received ✅ Your order {order_id} is confirmed. Thank you!"
    ]
    status, got = await api_call(
        http, "GET", f"{gw.base_url}/api/v1/payments/{link['id']}", shop.key
    )
    assert status == 200 and got["status"] == "paid"
    ledger = await gw.records.repos.ledger.between(
        shop.merchant_id, 0, time.time() + 1, limit=10, after=None
    )
    assert [(e["kind"], e["amount_minor"], e["order_id"]) for e in ledger.items] == [
        ("capture", 28900, order_id)
    ]


async def test_a_crash_between_the_recorded_webhook_and_its_effects_is_replayed_once(
    gw: Gateway,
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    provider: Provider,
    telegram_delivery: None,
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, chat = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    body, headers = provider.paid(provider.ref_of(link))

    # The process that took the webhook verified and recorded it, then died before applying.
    dying = _restarted(gw)
    outcome, event = await dying.receive(provider.name, shop.merchant_id, headers, body)
    assert outcome == "recorded" and event is not None
    assert await _order_status(gw, shop, order_id) == "new"

    # The next process's start-up sweep applies it; a second crash after the effects but
    # before the event was marked applied replays them once more.
    restarted = _restarted(gw)
    assert await restarted.sweep() >= 1
    await restarted.apply(event)
    await restarted.close()
    await dying.close()
    # The provider, never having seen a 200 from the dead process, redelivers.
    assert await provider.deliver(shop, body, headers) == 200

    assert await _order_status(gw, shop, order_id) == "confirmed"
    texts = await _settle_outbox(gw, tg, shop, chat)
    assert len([t for t in texts if PAID_TEXT in t]) == 1
    ledger = await gw.records.repos.ledger.between(
        shop.merchant_id, 0, time.time() + 1, limit=10, after=None
    )
    assert len(ledger.items) == 1


async def test_a_bad_webhook_secret_is_401_and_changes_nothing(
    gw: Gateway, http: aiohttp.ClientSession, tg: FakeTelegram, provider: Provider
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    body, headers = provider.paid(provider.ref_of(link), forged=True)
    assert await provider.deliver(shop, body, headers) == 401
    no_secret = {k: v for k, v in headers.items() if k != "hashstring"}
    if provider.name == "tap":
        assert await provider.deliver(shop, body, no_secret) == 401
    assert await _order_status(gw, shop, order_id) == "new"
    ledger = await gw.records.repos.ledger.between(
        shop.merchant_id, 0, time.time() + 1, limit=10, after=None
    )
    assert ledger.items == []
    _, got = await api_call(http, "GET", _payment_url(gw, link), shop.key)
    assert got["status"] == "initiated"
    # Another merchant's id in the path: its own provider's secret, not this one's.
    other = await _shop(gw, http, tg, provider.name, provider.base_url)
    body, headers = provider.paid(provider.ref_of(link))
    async with http.post(_webhook_url(gw, other), data=body, headers=headers) as r:
        assert r.status == 200  # verified with other's secret (same fake), but no payment of its
    assert await _order_status(gw, shop, order_id) == "new"


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def test_payment_creation_idempotency_key_rules(
    gw: Gateway, http: aiohttp.ClientSession, tg: FakeTelegram, moyasar: FakeMoyasar
) -> None:
    shop = await _shop(gw, http, tg, "moyasar", moyasar.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    other_order, _ = await _order_in_chat(gw, shop)
    url = f"{gw.base_url}/api/v1/payments"
    body = {"order_id": order_id}

    status, out = await api_call(http, "POST", url, shop.key, body)
    assert status == 400 and out["errors"][0]["field"] == "Idempotency-Key"
    v1 = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"  # a UUID, but version 1
    status, out = await api_call(http, "POST", url, shop.key, body, {"Idempotency-Key": v1})
    assert status == 400 and "UUID v4" in out["detail"]

    key = str(uuid.uuid4())
    invoices_before = len(moyasar.invoices)
    first = await api_call(http, "POST", url, shop.key, body, {"Idempotency-Key": key})
    async with http.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {shop.key}", "Idempotency-Key": key},
    ) as r:
        assert r.status == 201 and r.headers["Idempotent-Replayed"] == "true"
        assert await r.json() == first[1]
    assert len(moyasar.invoices) == invoices_before + 1  # the replay asked the provider nothing

    status, out = await api_call(
        http, "POST", url, shop.key, {"order_id": other_order}, {"Idempotency-Key": key}
    )
    assert status == 422

    running = str(uuid.uuid4())
    claim = await IdempotencyStore(gw.redis).claim(
        shop.merchant_id, "payments", running, _fingerprint({"order_id": other_order})
    )
    assert claim.outcome == "fresh"
    status, out = await api_call(
        http, "POST", url, shop.key, {"order_id": other_order}, {"Idempotency-Key": running}
    )
    assert status == 409

    status, out = await api_call(
        http,
        "POST",
        url,
        shop.key,
        {"order_id": "ord_nope"},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 404


async def test_refund_idempotency_key_rules_and_the_ledger(
    gw: Gateway,
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    provider: Provider,
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    url = f"{gw.base_url}/api/v1/payments/{link['id']}/refunds"

    status, _ = await api_call(
        http, "POST", url, shop.key, {}, {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert status == 422  # not paid yet: nothing to refund
    body, headers = provider.paid(provider.ref_of(link))
    assert await provider.deliver(shop, body, headers) == 200

    status, _ = await api_call(http, "POST", url, shop.key, {"amount_minor": 900})
    assert status == 400
    status, _ = await api_call(
        http, "POST", url, shop.key, {"amount_minor": 900}, {"Idempotency-Key": "not-a-uuid"}
    )
    assert status == 400
    key = str(uuid.uuid4())
    status, first = await api_call(
        http, "POST", url, shop.key, {"amount_minor": 900}, {"Idempotency-Key": key}
    )
    assert status == 201, first
    assert (first["amount_minor"], first["payment_id"]) == (900, link["id"])
    status, replay = await api_call(
        http, "POST", url, shop.key, {"amount_minor": 900}, {"Idempotency-Key": key}
    )
    assert status == 201 and replay == first
    status, _ = await api_call(
        http, "POST", url, shop.key, {"amount_minor": 901}, {"Idempotency-Key": key}
    )
    assert status == 422
    running = str(uuid.uuid4())
    await IdempotencyStore(gw.redis).claim(
        shop.merchant_id, f"refunds:{link['id']}", running, _fingerprint({"amount_minor": 5})
    )
    status, _ = await api_call(
        http, "POST", url, shop.key, {"amount_minor": 5}, {"Idempotency-Key": running}
    )
    assert status == 409
    status, rest = await api_call(
        http, "POST", url, shop.key, {}, {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert status == 201 and rest["amount_minor"] == 28900 - 900
    status, got = await api_call(
        http, "GET", f"{gw.base_url}/api/v1/payments/{link['id']}", shop.key
    )
    assert got["status"] == "refunded" and got["refunded_minor"] == 28900

    ledger = await gw.records.repos.ledger.between(
        shop.merchant_id, 0, time.time() + 1, limit=10, after=None
    )
    assert sorted((e["kind"], e["amount_minor"]) for e in ledger.items) == [
        ("capture", 28900),
        ("refund", 900),
        ("refund", 28000),
    ]


async def test_a_refund_made_at_the_provider_reaches_the_ledger_once(
    gw: Gateway,
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    provider: Provider,
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    ref = provider.ref_of(link)
    body, headers = provider.paid(ref)
    assert await provider.deliver(shop, body, headers) == 200

    # Staff refund 9 SAR in the provider's dashboard: only its webhook tells us.
    body, headers = provider.refunded(ref, dashboard_minor=900)
    assert await provider.deliver(shop, body, headers) == 200
    assert await provider.deliver(shop, body, headers) == 200  # redelivered
    status, got = await api_call(http, "GET", _payment_url(gw, link), shop.key)
    assert (got["status"], got["refunded_minor"]) == ("paid", 900)  # partly refunded

    # The rest through our API; the provider's webhook for that refund changes nothing more.
    url = f"{_payment_url(gw, link)}/refunds"
    status, rest = await api_call(
        http, "POST", url, shop.key, {}, {"Idempotency-Key": str(uuid.uuid4())}
    )
    assert status == 201 and rest["amount_minor"] == 28000
    body, headers = provider.refunded(ref, refund_id=rest["id"])
    assert await provider.deliver(shop, body, headers) == 200
    status, got = await api_call(http, "GET", _payment_url(gw, link), shop.key)
    assert (got["status"], got["refunded_minor"]) == ("refunded", 28900)

    ledger = await gw.records.repos.ledger.between(
        shop.merchant_id, 0, time.time() + 1, limit=10, after=None
    )
    assert sorted((e["kind"], e["amount_minor"]) for e in ledger.items) == [
        ("capture", 28900),
        ("refund", 900),
        ("refund", 28000),
    ]


async def test_provider_errors_are_fixed_phrases_and_only_keyed_calls_are_retried(
    gw: Gateway, http: aiohttp.ClientSession, tg: FakeTelegram, moyasar: FakeMoyasar, tap: FakeTap
) -> None:
    shop = await _shop(gw, http, tg, "moyasar", moyasar.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    before = len(moyasar.requests)
    moyasar.fail_next(503)
    status, out = await api_call(
        http,
        "POST",
        f"{gw.base_url}/api/v1/payments",
        shop.key,
        {"order_id": order_id},
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 502 and out["detail"] == "provider unavailable"
    assert "Internal server error" not in orjson.dumps(out).decode()
    assert len(moyasar.requests) == before + 1  # an invoice create carries no key: one try
    link = await _pay_link(gw, http, shop, order_id)  # a new request may try again
    assert link["url"]

    shop = await _shop(gw, http, tg, "tap", tap.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    payments = Payments(
        gw.records.repos,
        PaymentClient(allow_private=True),
        SecretBox(gw.settings.secret_key),
        Outbox(gw.redis),
        gw.records,
        RedisLiveEvents(gw.redis),
        gw.records,
        base_url=gw.base_url,
        sleep=_no_sleep,
    )
    before = len(tap.requests)
    tap.fail_next(502, times=2)
    doc = await payments.for_order(shop.merchant_id, order_id)
    await payments.close()
    assert doc["url"] and len(tap.requests) == before + 3  # 2 retries of a keyed charge
    assert len([c for c in tap.charges.values() if c.metadata["order_id"] == order_id]) == 1


async def test_two_requests_for_one_orders_link_make_one_invoice(
    gw: Gateway, http: aiohttp.ClientSession, tg: FakeTelegram, moyasar: FakeMoyasar
) -> None:
    shop = await _shop(gw, http, tg, "moyasar", moyasar.base_url)
    order_id, _ = await _order_in_chat(gw, shop)
    url = f"{gw.base_url}/api/v1/payments"
    moyasar.delay_s = 0.5  # the first creation is still at the provider when the second asks
    try:
        answers = await asyncio.gather(
            *(
                api_call(
                    http,
                    "POST",
                    url,
                    shop.key,
                    {"order_id": order_id},
                    {"Idempotency-Key": str(uuid.uuid4())},
                )
                for _ in range(2)
            )
        )
    finally:
        moyasar.delay_s = 0.0
    assert sorted(status for status, _ in answers) == [201, 409]
    invoices = [i for i in moyasar.invoices.values() if i.metadata["order_id"] == order_id]
    assert len(invoices) == 1
    link = await _pay_link(gw, http, shop, order_id)  # afterwards: the one link
    assert link["url"].endswith(f"{invoices[0].id}?lang=en")


async def _no_sleep(seconds: float) -> None:
    return None


async def test_the_provider_route_refuses_unguarded_api_bases(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    _, key = await gw.records.create_merchant("guarded", "en")
    url = f"{gw.base_url}/api/v1/payments/provider"
    status, out = await api_call(
        http, "PUT", url, key, {"kind": "moyasar", "secret_key": "sk_test_12345678"}
    )
    assert status == 422 and "webhook_secret" in out["detail"]
    status, _ = await api_call(http, "GET", url, key)
    assert status == 404


async def test_a_payment_for_an_order_cancelled_meanwhile_is_kept_but_not_announced(
    gw: Gateway,
    http: aiohttp.ClientSession,
    tg: FakeTelegram,
    provider: Provider,
    telegram_delivery: None,
) -> None:
    shop = await _shop(gw, http, tg, provider.name, provider.base_url)
    order_id, chat = await _order_in_chat(gw, shop)
    link = await _pay_link(gw, http, shop, order_id)
    status, _ = await api_call(
        http, "PATCH", f"{gw.base_url}/api/v1/orders/{order_id}", shop.key, {"status": "cancelled"}
    )
    assert status == 200
    body, headers = provider.paid(provider.ref_of(link))
    assert await provider.deliver(shop, body, headers) == 200
    assert await _order_status(gw, shop, order_id) == "cancelled"
    _, got = await api_call(http, "GET", _payment_url(gw, link), shop.key)
    assert got["status"] == "paid"  # the money moved: staff refund it from here
    texts = await _settle_outbox(gw, tg, shop, chat)
    assert not [t for t in texts if PAID_TEXT in t]
