"""Delivery against Telegram's real error answers, through the whole engine."""

from __future__ import annotations

import itertools

import orjson
import pytest

from engine.adapters.redis.queues import Outbox
from engine.adapters.redis.server import redis_client
from tests.conftest import DEFAULT_TOKEN, Engine, Store
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = pytest.mark.integration

_chats = itertools.count(7_000_000)


async def test_429_retry_after_is_honoured_and_the_reply_arrives_once(
    engine: Engine, demo_store: Store, fake_telegram: FakeTelegram
) -> None:
    channel = await engine.connect_telegram(demo_store.api_key, fake_telegram.base_url)
    chat = next(_chats)
    fake_telegram.fail_next(1, 429, retry_after=1, description="Too Many Requests: retry after 1")
    await engine.say(channel, chat, "do you have oud perfume?")
    sent = await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    assert len(sent) == 1
    attempts = [
        c
        for c in fake_telegram.calls
        if c.method.lower() == "sendmessage" and str(c.json.get("chat_id")) == str(chat)
    ]
    assert [c.status for c in attempts] == [429, 200]  # retried once, delivered once


async def test_blocked_chat_is_dead_lettered_and_other_chats_still_served(
    engine: Engine, demo_store: Store, fake_telegram: FakeTelegram
) -> None:
    channel = await engine.connect_telegram(demo_store.api_key, fake_telegram.base_url)
    blocked, fine = next(_chats), next(_chats)
    fake_telegram.block_chat(blocked)
    await engine.say(channel, blocked, "hello there, any watches?")
    await engine.say(channel, fine, "any watches?")
    assert len(await fake_telegram.wait_for_messages(fine, 1, timeout=60)) == 1
    redis = redis_client(engine.runtime.settings.redis_url)
    try:
        reasons = []
        for _ in range(200):
            reasons = [
                d
                for d in await Outbox(redis).dead_letters(None, 500)
                if d["reply"]["customer_id"] == str(blocked)
            ]
            if reasons:
                break
            import asyncio

            await asyncio.sleep(0.05)
        assert reasons, "the blocked chat's reply was not dead-lettered"
        assert (
            "blocked" in reasons[0]["reason"].lower() or "forbidden" in reasons[0]["reason"].lower()
        )
        assert DEFAULT_TOKEN not in orjson.dumps(reasons[0]).decode()
    finally:
        await redis.aclose()
    assert fake_telegram.sent_to(blocked) == []
