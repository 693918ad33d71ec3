"""Idle conversations and webchat frames do not hold Redis memory forever.

A conversation checkpoint had no expiry, so every customer who ever wrote once (or every
session an anonymous webchat client opens and writes in) stayed in Redis memory for good; and
each webchat frame id kept a dedupe key for 7 days, the window of a provider's redelivery,
though no provider redelivers webchat frames. Real Redis; the last test goes through the
session's served engine (a signed Telegram webhook, a real turn).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.adapters.redis import keys
from engine.adapters.redis.queues import DEDUPE_TTL_S, Inbox, TurnCommitter
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.domain.messages import InboundMessage, OutboundReply, conversation_key
from tests.conftest import Engine, Store
from tests.fakes.fake_telegram import FakeTelegram, make_update
from tests.messages import bot_reply

DAY = 24 * 3600
_ids = itertools.count(1)


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    embedded = EmbeddedRedis(tmp_path / "redis")
    client = redis_client(embedded.start())
    yield client
    await client.aclose()
    embedded.stop()


def _reply(key: str) -> OutboundReply:
    return bot_reply(key, intent="greeting")


async def test_each_turn_commit_sets_and_refreshes_the_idle_ttl(redis: aioredis.Redis) -> None:
    committer = TurnCommitter(redis, idle_ttl_s=7 * DAY)
    key = conversation_key("m1", "ch1", "c1")
    state_key = keys.conversation_state("m1", key)
    await committer.commit("m1", key, {"turns": 1}, _reply(key))
    assert 6 * DAY < await redis.ttl(state_key) <= 7 * DAY
    await redis.expire(state_key, 60)  # weeks went by
    await committer.commit("m1", key, {"turns": 2}, None)
    assert 6 * DAY < await redis.ttl(state_key) <= 7 * DAY
    assert (await committer.load_state("m1", key)) == {"turns": 2}
    # A staff edit (takeover, cart) is activity too, and keeps an expiry.
    await redis.expire(state_key, 60)
    assert await committer.edit_state("m1", key, {"paused": True}) == {"turns": 2, "paused": True}
    assert 6 * DAY < await redis.ttl(state_key) <= 7 * DAY
    assert await redis.xlen(keys.outbox_stream("telegram")) == 1  # the reply, with the state


async def test_webchat_dedupe_keys_live_minutes_provider_ones_a_week(
    redis: aioredis.Redis,
) -> None:
    inbox = Inbox(redis, 4, local_dedupe_ttl_s=600)
    now = time.time()
    web = InboundMessage("m1", "webchat", "webchat", "c1", "wc-c1-1", "hello", now)
    tg = InboundMessage("m1", "ch_1", "telegram", "42", "9001", "hello", now)
    assert await inbox.append(web) and await inbox.append(tg)
    assert not await inbox.append(web)  # a reconnecting widget's re-send is still a no-op
    web_ttl = await redis.ttl(keys.dedupe_key("m1", "webchat", "wc-c1-1"))
    tg_ttl = await redis.ttl(keys.dedupe_key("m1", "ch_1", "9001"))
    assert 0 < web_ttl <= 600
    assert DEDUPE_TTL_S - 60 < tg_ttl <= DEDUPE_TTL_S


async def test_a_served_turn_leaves_a_checkpoint_that_expires(
    engine: Engine, demo_store: Store, fake_telegram: FakeTelegram
) -> None:
    channel_id, secret = await engine.connect_telegram(demo_store.api_key, fake_telegram.base_url)
    chat = 6_100_000 + next(_ids)
    status = await engine.post_telegram_update(
        channel_id, secret, make_update(8_100_000 + next(_ids), chat, "hello")
    )
    assert status == 200
    await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    key = conversation_key(demo_store.merchant_id, channel_id, str(chat))
    client = redis_client(engine.runtime.settings.redis_url)
    try:
        ttl = await client.ttl(keys.conversation_state(demo_store.merchant_id, key))
        assert 29 * DAY < ttl <= 30 * DAY  # KALEEM_CONVERSATION_IDLE_TTL_SECONDS' default
    finally:
        await client.aclose()
