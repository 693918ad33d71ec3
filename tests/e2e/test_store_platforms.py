"""Store platforms end to end: a merchant connects Salla, Zid or Shopify (fakes on loopback
speaking each wire format), 1,000 products sync across pages through a 429, the platform is
subscribed to our webhook URL, the bot answers from the products, and signed webhooks change
what it says (one of them fired by the fake platform itself at the URL it was given); forged
ones change nothing, and disconnecting removes the subscriptions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from connectors.stores import registry
from connectors.stores.base import same_target
from tests.conftest import Engine
from tests.fakes.fake_salla import FakeSalla, salla_product
from tests.fakes.fake_shopify import FakeShopify, shopify_product
from tests.fakes.fake_store import FakeStore
from tests.fakes.fake_zid import FakeZid, zid_product

N = 1000
SPECIAL = 417
TITLE = "Saffron Oud Perfume"
# The platform's product-updated event, in its words.
UPDATED = {"salla": "product.updated", "zid": "product.update", "shopify": "products/update"}


def _named(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    if kind == "zid":
        item["name"] = {"ar": TITLE, "en": TITLE}
    elif kind == "salla":
        item["name"] = TITLE
    else:
        item["title"] = TITLE
    return item


def _setup(kind: str) -> tuple[FakeStore, Callable[[int, float], dict[str, Any]], dict[str, str]]:
    if kind == "salla":
        salla = FakeSalla()
        creds = {"access_token": salla.access_token, "webhook_secret": "salla-hook-secret"}
        return salla, salla_product, creds
    if kind == "zid":
        zid = FakeZid()
        creds = {
            "authorization": zid.authorization,
            "access_token": zid.access_token,
            "webhook_user": "kaleem",
            "webhook_password": "zid-hook-password",
        }
        return zid, zid_product, creds
    shop = FakeShopify()
    creds = {
        "shop": "demo.myshopify.com",
        "access_token": shop.access_token,
        "client_secret": "shh",
    }
    return shop, shopify_product, creds


def _webhook(
    kind: str, item: dict[str, Any], creds: dict[str, str], event_id: str, *, forged: bool = False
) -> tuple[bytes, dict[str, str], str]:
    """The platform's product-updated delivery: body, headers, query string."""
    if kind == "salla":
        body = json.dumps({"event": "product.updated", "merchant": 1, "data": item}).encode()
        secret = "wrong" if forged else creds["webhook_secret"]
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return body, {"X-Salla-Signature": sig, "X-Salla-Security-Strategy": "Signature"}, ""
    if kind == "zid":
        password = "wrong" if forged else creds["webhook_password"]
        basic = base64.b64encode(f"{creds['webhook_user']}:{password}".encode()).decode()
        return (
            json.dumps(item).encode(),
            {"Authorization": f"Basic {basic}"},
            "?event=product.update",
        )
    body = json.dumps(item).encode()
    secret = "wrong" if forged else creds["client_secret"]
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Webhook-Id": event_id,
    }
    return body, headers, ""


def _held_for(fake: FakeStore, hook_url: str) -> list[dict[str, Any]]:
    """The fake platform's subscriptions delivering to ``hook_url`` (any event query)."""
    return [
        sub
        for sub in fake.subscriptions
        if same_target(
            str(sub.get("url") or sub.get("target_url") or sub.get("address")),
            hook_url,
            query=False,
        )
    ]


async def _quote(engine: Engine, key: str, customer: str, price: str) -> dict[str, Any]:
    """Ask for the product until the bot shows it at ``price`` (indexing is asynchronous),
    then ask its price in the same conversation; the reply to that."""
    deadline = time.monotonic() + 90
    n = 0
    while True:
        n += 1
        found = await engine.ask(key, f"do you have {TITLE}?", customer=f"{customer}-{n}")
        top = found["products"][:1]
        if top and top[0]["title"] == TITLE and price in str(top[0]["price"]):
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(1.0)
    return await engine.ask(key, "how much is it?", customer=f"{customer}-{n}")


@pytest.mark.parametrize("kind", ["salla", "zid", "shopify"])
async def test_a_store_syncs_the_bot_answers_and_signed_webhooks_change_prices(
    engine: Engine, kind: str
) -> None:
    fake, make, creds = _setup(kind)
    fake.products = [make(n, 10.0 + n) for n in range(N)]
    fake.products[SPECIAL] = _named(kind, make(SPECIAL, 123.0))
    fake.throttle_requests = {3}
    fake.retry_after = "1"
    base = await fake.start()
    try:
        _, key = await engine.create_merchant(f"{kind} shop", "en")
        auth = {"Authorization": f"Bearer {key}"}
        url = engine.base_url
        async with engine.session.post(
            f"{url}/api/v1/integrations",
            json={"kind": kind, "credentials": creds, "api_base": base},
            headers=auth,
        ) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        integration_id = created["id"]
        assert created["kind"] == kind and created["status"] == "connected"
        assert created["webhook_url"].endswith(f"/webhooks/{kind}/{integration_id}")

        deadline = time.monotonic() + 120
        while True:
            async with engine.session.get(
                f"{url}/api/v1/integrations/{integration_id}", headers=auth
            ) as r:
                view = await r.json()
            if view["status"] in ("synced", "failed") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert view["status"] == "synced", json.dumps(view)
        assert view["sync"] == {"products": N, "orders": 0, "last_error": None}
        assert [c.status for c in fake.calls].count(429) == 1
        assert creds["access_token"] not in json.dumps(view)
        # The platform holds our webhook URL for every event we apply, nothing pasted by hand.
        topics = registry.KINDS[kind].webhook_topics
        subscribed = {"status": "subscribed", "topics": len(topics), "last_error": None}
        assert view["webhooks"] == subscribed
        hook_url = created["webhook_url"]
        ours = _held_for(fake, hook_url)
        assert len(ours) == len(topics)
        [update] = fake.subscribed(UPDATED[kind])
        target = str(update.get("url") or update.get("target_url") or update.get("address"))
        wanted = f"{hook_url}?event=product.update" if kind == "zid" else hook_url
        assert same_target(target, wanted), target

        reply = await _quote(engine, key, f"{kind}-q", "123")
        assert TITLE in reply["text"] and "123" in reply["text"], reply

        # A signed product update changes the price the bot quotes.
        item = _named(kind, make(SPECIAL, 149.0))
        body, headers, query = _webhook(kind, item, creds, "wh-1")
        async with engine.session.post(
            f"{url}/webhooks/{kind}/{integration_id}{query}", data=body, headers=headers
        ) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["outcome"] == "accepted"
        reply = await _quote(engine, key, f"{kind}-p", "149")
        assert TITLE in reply["text"] and "149" in reply["text"], reply

        # Forged credentials: 401 and nothing changes.
        cheap = _named(kind, make(SPECIAL, 1.0))
        body, headers, query = _webhook(kind, cheap, creds, "wh-2", forged=True)
        async with engine.session.post(
            f"{url}/webhooks/{kind}/{integration_id}{query}", data=body, headers=headers
        ) as r:
            assert r.status == 401
        sku = {"salla": "salla-100417", "zid": "zid-6f1e000417", "shopify": "shopify-7000000417"}[
            kind
        ]
        async with engine.session.get(f"{url}/api/v1/products/{sku}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["price"] == 149.0

        # The platform redelivers the signed update: a no-op.
        body, headers, query = _webhook(kind, item, creds, "wh-1")
        async with engine.session.post(
            f"{url}/webhooks/{kind}/{integration_id}{query}", data=body, headers=headers
        ) as r:
            assert r.status == 200 and (await r.json())["outcome"] == "duplicate"
        async with engine.session.get(f"{url}/api/v1/integrations", headers=auth) as r:
            [listed] = (await r.json())["items"]
        assert listed["id"] == integration_id and listed["sync"]["products"] == N

        # The platform itself fires a signed product update at the URL it holds: it applies.
        fired = _named(kind, make(SPECIAL, 175.0))
        [(status, text)] = await fake.deliver(UPDATED[kind], fired)
        assert status == 200 and json.loads(text)["outcome"] == "accepted", text
        async with engine.session.get(f"{url}/api/v1/products/{sku}", headers=auth) as r:
            assert r.status == 200 and (await r.json())["price"] == 175.0

        # Disconnecting erases the credentials: the platform's next webhook finds nothing.
        async with engine.session.delete(
            f"{url}/api/v1/integrations/{integration_id}", headers=auth
        ) as r:
            assert r.status == 204
        assert _held_for(fake, hook_url) == []
        body, headers, query = _webhook(kind, item, creds, "wh-3")
        async with engine.session.post(
            f"{url}/webhooks/{kind}/{integration_id}{query}", data=body, headers=headers
        ) as r:
            assert r.status == 404
    finally:
        await fake.stop()


async def test_where_is_my_order_answers_the_platform_status(engine: Engine) -> None:
    from engine.domain.integrations import platform_order_id

    salla = FakeSalla()
    salla.products = [salla_product(1)]
    base = await salla.start()
    try:
        _, key = await engine.create_merchant("salla orders", "en")
        auth = {"Authorization": f"Bearer {key}"}
        creds = {"access_token": salla.access_token, "webhook_secret": "hook"}
        async with engine.session.post(
            f"{engine.base_url}/api/v1/integrations",
            json={"kind": "salla", "credentials": creds, "api_base": base},
            headers=auth,
        ) as r:
            assert r.status == 201, await r.text()
            integration_id = (await r.json())["id"]
        data = {
            "id": 8812,
            "reference_id": 55123,
            "status": {"slug": "delivering", "name": "Out for delivery"},
            "customer": {"mobile": 555000111, "mobile_code": "+966"},
            "amounts": {"total": {"amount": 240, "currency": "SAR"}},
        }
        body = json.dumps({"event": "order.status.updated", "merchant": 1, "data": data}).encode()
        sig = hmac.new(b"hook", body, hashlib.sha256).hexdigest()
        async with engine.session.post(
            f"{engine.base_url}/webhooks/salla/{integration_id}",
            data=body,
            headers={"X-Salla-Signature": sig},
        ) as r:
            assert r.status == 200, await r.text()
        order_id = platform_order_id(integration_id, "8812")
        async with engine.session.get(
            f"{engine.base_url}/api/v1/orders/{order_id}", headers=auth
        ) as r:
            assert r.status == 200, await r.text()
        # The customer knows the number Salla showed them, and their phone.
        reply = await engine.ask(
            key, "where is my order #55123? my phone is +966555000111", customer="ord-1"
        )
        assert reply["intent"] == "order_status", reply
        assert "Out for delivery" in reply["text"] and "55123" in reply["text"], reply
        ours = await engine.ask(
            key, f"where is my order {order_id}? my phone is +966555000111", customer="ord-3"
        )
        assert "Out for delivery" in ours["text"], ours
        # A phone alone opens nothing (the security rule stands for platform orders too).
        alone = await engine.ask(
            key, "where is my order? my phone is +966555000111", customer="ord-2"
        )
        assert "Out for delivery" not in alone["text"]
    finally:
        await salla.stop()
