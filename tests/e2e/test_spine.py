"""End to end on the real engine: signed Telegram updates in, sendMessage out at a fake
Telegram server on loopback; playground and webchat through the same pipeline."""

from __future__ import annotations

import itertools

import orjson
import pytest
import ray

from engine.adapters.redis.keys import conversation_state
from engine.adapters.redis.queues import TurnCommitter
from engine.adapters.redis.server import redis_client
from engine.domain.messages import conversation_key
from engine.domain.sharding import partition_of
from tests.conftest import Engine, Store
from tests.fakes.fake_telegram import FakeTelegram, make_update
from tests.webchat_client import new_session, next_frame, socket_url

pytestmark = pytest.mark.integration

_update_ids = itertools.count(1000)
_chat_ids = itertools.count(5_000_000)

DEMO_SKUS = {"KD-SHOE-001", "KD-SHOE-002", "KD-SHOE-003"}


@pytest.fixture(scope="module")
async def tg(engine: Engine, demo_store: Store, fake_telegram: FakeTelegram) -> tuple[str, str]:
    return await engine.connect_telegram(demo_store.api_key, fake_telegram.base_url)


async def test_signed_update_gets_a_relevant_product_reply(
    engine: Engine, tg: tuple[str, str], fake_telegram: FakeTelegram
) -> None:
    channel_id, secret = tg
    chat = next(_chat_ids)
    status = await engine.post_telegram_update(
        channel_id, secret, make_update(next(_update_ids), chat, "أبغى جزمة رياضية للجري")
    )
    assert status == 200
    [sent] = await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    assert sent["chat_id"] in (chat, str(chat))
    assert "AirFlow Running Shoes" in sent["text"]
    assert "289" in sent["text"]


async def test_redelivered_update_is_answered_once(
    engine: Engine, tg: tuple[str, str], fake_telegram: FakeTelegram
) -> None:
    channel_id, secret = tg
    chat = next(_chat_ids)
    update = make_update(next(_update_ids), chat, "Do you have white sneakers for women?")
    assert await engine.post_telegram_update(channel_id, secret, update) == 200
    assert await engine.post_telegram_update(channel_id, secret, update) == 200
    await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    # A later, different message is answered after any duplicate would have been: the chat
    # must then hold exactly two replies (turns are ordered per conversation).
    assert (
        await engine.post_telegram_update(
            channel_id, secret, make_update(next(_update_ids), chat, "thanks!")
        )
        == 200
    )
    sent = await fake_telegram.wait_for_messages(chat, 2, timeout=60)
    assert len(sent) == 2
    assert "Sneakers" in sent[0]["text"]


async def test_wrong_or_missing_secret_is_401_and_nothing_is_sent(
    engine: Engine, tg: tuple[str, str], fake_telegram: FakeTelegram
) -> None:
    channel_id, secret = tg
    chat = next(_chat_ids)
    bad = make_update(next(_update_ids), chat, "hello")
    assert await engine.post_telegram_update(channel_id, "wrong-secret", bad) == 401
    assert await engine.post_telegram_update(channel_id, None, bad) == 401
    good = make_update(next(_update_ids), chat, "do you have perfume?")
    assert await engine.post_telegram_update(channel_id, secret, good) == 200
    sent = await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    assert len(sent) == 1  # only the signed update was answered


async def test_bad_webhook_input_gets_clear_4xx(engine: Engine, tg: tuple[str, str]) -> None:
    channel_id, secret = tg
    assert await engine.post_telegram_update(channel_id, secret, b"{not json") == 400
    assert await engine.post_telegram_update(channel_id, secret, b'{"no_update_id": 1}') == 400
    assert await engine.post_telegram_update(channel_id, secret, b"[1, 2]") == 400
    assert (
        await engine.post_telegram_update("ch_doesnotexist", secret, make_update(1, 1, "x")) == 404
    )
    big = b'{"update_id": 1, "message": {"text": "' + b"a" * 400_000 + b'"}}'
    assert await engine.post_telegram_update(channel_id, secret, big) == 413


async def test_killed_host_actor_resumes_with_state(
    engine: Engine, tg: tuple[str, str], fake_telegram: FakeTelegram, demo_store: Store
) -> None:
    channel_id, secret = tg
    chat = next(_chat_ids)
    await engine.post_telegram_update(
        channel_id, secret, make_update(next(_update_ids), chat, "مرحبا")
    )
    await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    key = conversation_key(demo_store.merchant_id, channel_id, str(chat))
    rt = engine.runtime
    host = rt.hosts[partition_of(key, rt.settings.inbox_partitions) % rt.settings.host_actors]
    ray.kill(host, no_restart=False)
    await engine.post_telegram_update(
        channel_id, secret, make_update(next(_update_ids), chat, "عندكم عطور؟")
    )
    sent = await fake_telegram.wait_for_messages(chat, 2, timeout=120)
    assert len(sent) == 2
    redis = redis_client(rt.settings.redis_url)
    try:
        state = await TurnCommitter(redis).load_state(demo_store.merchant_id, key)
        assert state is not None
        assert state["turns"] == 2  # the first turn survived the crash
        assert len(state["handled"]) == 2
        assert await redis.exists(conversation_state(demo_store.merchant_id, key))
    finally:
        await redis.aclose()


async def test_playground_answers_products_policies_and_handoff(
    engine: Engine, demo_store: Store
) -> None:
    product = await engine.ask(demo_store.api_key, "I need running shoes", customer="pg-1")
    assert product["intent"] == "product_search"
    assert {p["sku"] for p in product["products"]} & DEMO_SKUS
    assert all(set(p) == {"sku", "title", "price", "currency", "url"} for p in product["products"])

    policy = await engine.ask(demo_store.api_key, "كم رسوم الشحن؟", customer="pg-2")
    assert policy["intent"] == "policy_question"
    assert policy["products"] == []
    assert any(ch.isdigit() for ch in policy["text"])

    human = await engine.ask(demo_store.api_key, "I want to talk to a human", customer="pg-3")
    assert human["handoff"] is True

    nothing = await engine.ask(
        demo_store.api_key, "do you sell excavator hydraulic pumps?", customer="pg-4"
    )
    assert nothing["products"] == []


async def test_merchants_never_see_each_others_products(engine: Engine, demo_store: Store) -> None:
    other_id, other_key = await engine.create_merchant("Laptop Shop", "en")
    catalog = b"\n".join(
        orjson.dumps(p)
        for p in [
            {
                "sku": "LP-1",
                "title": "UltraBook 14 laptop",
                "price": 3999,
                "currency": "SAR",
                "description": "Thin and light laptop, 16 GB RAM",
            },
            {
                "sku": "LP-2",
                "title": "Gaming laptop 17",
                "price": 6999,
                "currency": "SAR",
                "description": "RTX graphics, 32 GB RAM",
            },
        ]
    )
    job = await engine.import_and_wait(other_key, "/api/v1/catalog/import", catalog)
    assert job["status"] == "done"
    theirs = await engine.ask(other_key, "running shoes", customer="iso-1")
    assert not {p["sku"] for p in theirs["products"]} & DEMO_SKUS
    ours = await engine.ask(demo_store.api_key, "gaming laptop", customer="iso-2")
    assert not {p["sku"] for p in ours["products"]} & {"LP-1", "LP-2"}
    laptops = await engine.ask(other_key, "a laptop for gaming", customer="iso-3")
    assert "LP-2" in {p["sku"] for p in laptops["products"]}
    # Another merchant's key cannot read this merchant's job either.
    async with engine.session.post(
        f"{engine.base_url}/api/v1/catalog/import",
        data=catalog,
        headers={"Authorization": f"Bearer {other_key}", "Content-Type": "application/x-ndjson"},
    ) as r:
        job_id = (await r.json())["job_id"]
    async with engine.session.get(
        f"{engine.base_url}/api/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {demo_store.api_key}"},
    ) as r:
        assert r.status == 404
    assert other_id != demo_store.merchant_id


async def test_catalog_import_reports_bad_rows_and_keeps_good_ones(engine: Engine) -> None:
    _, key = await engine.create_merchant("CSV Shop", "en")
    csv = (
        "sku,title,price,currency\n"
        "A-1,Blue mug,25,SAR\n"
        ",Missing sku,10,SAR\n"
        "A-3,Red mug,not-a-price,SAR\n"
        "A-4,Green mug,٣٠,SAR\n"
    ).encode()
    job = await engine.import_and_wait(key, "/api/v1/catalog/import", csv, "text/csv")
    assert job["status"] == "done"
    assert job["progress"]["total"] == 2
    assert sorted(e["line"] for e in job["errors"]) == [3, 4]
    reply = await engine.ask(key, "green mug", customer="csv-1")
    assert [p["sku"] for p in reply["products"]][:1] == ["A-4"]
    assert reply["products"][0]["price"] == 30


async def test_admin_api_rejects_bad_input_clearly(engine: Engine, demo_store: Store) -> None:
    url = engine.base_url
    async with engine.session.post(f"{url}/api/v1/merchants", json={"name": "x"}) as r:
        assert r.status == 401
        assert r.content_type == "application/problem+json"
    async with engine.session.post(
        f"{url}/api/v1/merchants", data=b"{oops", headers=engine.operator
    ) as r:
        assert r.status == 400
    async with engine.session.post(
        f"{url}/api/v1/merchants",
        json={"name": "x", "default_language": "fr"},
        headers=engine.operator,
    ) as r:
        assert r.status == 422
        assert (await r.json())["errors"][0]["field"] == "default_language"
    auth = {"Authorization": f"Bearer {demo_store.api_key}"}
    async with engine.session.post(
        f"{url}/api/v1/playground/messages",
        json={"customer_id": "a b", "text": "hi"},
        headers=auth,
    ) as r:
        assert r.status == 422
    async with engine.session.post(
        f"{url}/api/v1/channels", json={"kind": "telegram", "bot_token": "1:a"}, headers=auth
    ) as r:
        assert r.status == 422
    async with engine.session.get(f"{url}/api/v1/jobs/job_nope", headers=auth) as r:
        assert r.status == 404
    async with engine.session.get(
        f"{url}/api/v1/jobs/x", headers={"Authorization": "Bearer nope"}
    ) as r:
        assert r.status == 401


async def test_health_readiness_and_metrics(engine: Engine) -> None:
    async with engine.session.get(f"{engine.base_url}/healthz") as r:
        assert r.status == 200
    async with engine.session.get(f"{engine.base_url}/readyz") as r:
        body = await r.json()
        assert r.status == 200, body
        assert body["ready"] is True
        assert {"redis", "embedder", "host-0", "host-1"} <= set(body["checks"])
    async with engine.session.get(f"{engine.base_url}/metrics") as r:
        text = await r.text()
        assert "kaleem_webhooks_total" in text


async def test_webchat_page_and_socket_round_trip(engine: Engine, demo_store: Store) -> None:
    async with engine.session.get(f"{engine.base_url}/webchat/{demo_store.merchant_id}") as r:
        assert r.status == 200
        page = await r.text()
        assert "/webchat/widget.js" in page and demo_store.merchant_id in page
    async with engine.session.get(f"{engine.base_url}/webchat/m_unknown") as r:
        assert r.status == 404
    chat = await new_session(engine.session, engine.base_url, demo_store.merchant_id)
    ws_url = socket_url(engine.base_url, demo_store.merchant_id, chat["token"])
    async with engine.session.ws_connect(ws_url) as ws:
        assert (await next_frame(ws, "history", 10))["messages"] == []
        await ws.send_str('{"type": "message", "id": "m1", "text": "عندكم شنطة نسائية؟"}')
        msg = await next_frame(ws, "reply")
        assert msg["products"], msg
        await ws.send_str("not json")
        err = await next_frame(ws, "error", 10)
        assert err["type"] == "error"
