"""Outbound delivery per channel kind against fake platforms on loopback, with real Redis:
the reply at the fake API, splitting, product cards, platform errors, outages, windows,
rate limits shared through Redis, dead letters and replay."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from connectors import registry
from connectors.base import SendLimits, SendRule
from connectors.instagram import split_utf8
from connectors.messenger import default_split
from engine.adapters.providers import ChannelSender
from engine.adapters.records import Records
from engine.adapters.redis import keys
from engine.adapters.redis.queues import Outbox, StreamConsumer
from engine.adapters.redis.ratelimits import RedisRateLimiter
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox
from engine.domain.messages import OutboundReply, ProductCard
from engine.services.delivery import CircuitBreaker, DeliveryWorker
from tests.fakes.fake_meta import FakeMeta
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram

# The issue asks for a 30 s outage; the suite uses 6 s by default to stay fast (the breaker
# logic is the same). KALEEM_TEST_OUTAGE_S=30 runs the full-length version.
OUTAGE_S = float(os.environ.get("KALEEM_TEST_OUTAGE_S", "6"))
_ids = itertools.count(1)

SHOES = ProductCard("S-1", "AirFlow Running Shoes", 289.0, "SAR", "https://shop.example/s1")
BAG = ProductCard("B-1", "Leather Bag", 1200.0, "SAR", "https://shop.example/b1")
MUG = ProductCard("M-1", "Red mug", None, None, None)
CAP = ProductCard("C-1", "Cap", 30.0, "SAR", "https://shop.example/c1")


class Env:
    def __init__(self, redis: aioredis.Redis, records: Records, meta: FakeMeta, tg: FakeTelegram):
        self.redis = redis
        self.records = records
        self.meta = meta
        self.tg = tg
        self.session = aiohttp.ClientSession()

    async def channel(self, kind: str, **extra: str) -> tuple[str, str]:
        """A new channel (its own breaker/rate state); returns (channel id, account id)."""
        account = str(1_000_000 + next(_ids))
        if kind == "telegram":
            cid = await self.records.create_channel(
                "m1", kind, self.tg.base_url, DEFAULT_TOKEN, "s"
            )
            return cid, ""
        token = f"tok-{account}"
        self.meta.add_account(kind, account, token)
        cid = await self.records.create_channel(
            "m1",
            kind,
            self.meta.base_url,
            secrets_={"access_token": token, "app_secret": "a", "verify_token": "v"},
            config={"account_id": account, "api_version": "v21.0", **extra},
        )
        return cid, account

    def worker(self, kind: str, name: str = "w") -> DeliveryWorker:
        return DeliveryWorker(
            StreamConsumer(self.redis, [keys.outbox_stream(kind)], keys.OUTBOX_GROUP, name),
            Outbox(self.redis),
            ChannelSender(registry.KINDS[kind], self.session, self.records, allow_private=True),
            RedisRateLimiter(
                self.redis,
                kind,
                registry.KINDS[kind].send_rules(
                    SendLimits(whatsapp_pair_per_s=50, whatsapp_pair_burst=50)
                ),
            ),
            max_attempts=6,
            breaker=CircuitBreaker(threshold=3, cooldown_s=0.2, max_cooldown_s=2.0),
        )

    async def enqueue(self, reply: OutboundReply) -> None:
        await self.redis.xadd(
            keys.outbox_stream(reply.channel_kind), {"m": orjson.dumps(reply.to_dict())}
        )

    async def dead(self, outbox_id: str) -> list[dict[str, Any]]:
        return [
            d
            for d in await Outbox(self.redis).dead_letters(None, 500)
            if d["reply"]["outbox_id"] == outbox_id
        ]


def reply(
    kind: str,
    channel_id: str,
    customer: str,
    text: str,
    *,
    products: tuple[ProductCard, ...] = (),
    age_s: float = 0.0,
    intent: str = "product_search",
    trace: dict[str, str] | None = None,
) -> OutboundReply:
    return OutboundReply(
        outbox_id=f"ob-{next(_ids)}",
        merchant_id="m1",
        channel_id=channel_id,
        channel_kind=kind,
        customer_id=customer,
        text=text,
        intent=intent,
        handoff=False,
        in_reply_to=("x",),
        received_at=time.time() - age_s,
        language="en",
        products=products,
        trace=trace or {},
    )


@pytest.fixture(scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    data_dir = Path(tmp_path_factory.mktemp("deliv"))
    embedded = EmbeddedRedis(data_dir / "redis")
    redis = redis_client(embedded.start())
    repos = sqlite_repositories(data_dir / "records.sqlite3")
    records = Records(repos, SecretBox(Fernet.generate_key().decode()))
    meta = FakeMeta()
    await meta.start()
    async with FakeTelegram() as tg:
        e = Env(redis, records, meta, tg)
        yield e
        await e.session.close()
    await meta.stop()
    await redis.aclose()
    await repos.close()
    embedded.stop()


@pytest.fixture
async def running(env: Env) -> AsyncIterator[dict[str, DeliveryWorker]]:
    workers = {k: env.worker(k) for k in ("whatsapp", "messenger", "instagram", "telegram")}
    tasks = [asyncio.create_task(w.run()) for w in workers.values()]
    yield workers
    for w in workers.values():
        await w.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_whatsapp_reply_with_products_is_text_plus_interactive_list(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    cid, _ = await env.channel("whatsapp")
    long_text = "\n\n".join(f"Paragraph {i}: " + "word " * 300 for i in range(4))
    await env.enqueue(reply("whatsapp", cid, "966501", long_text, products=(SHOES, BAG, MUG, CAP)))
    sent = await env.meta.wait_for_messages("966501", 3, timeout=20)
    texts = [m for m in sent if m["type"] == "text"]
    assert len(texts) >= 2 and all(len(m["text"]["body"]) <= 4096 for m in texts)
    assert sent[-1]["type"] == "interactive"
    rows = sent[-1]["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows][:2] == ["AirFlow Running Shoes", "Leather Bag"]
    short = reply("whatsapp", cid, "966502", "Two picks:", products=(SHOES, BAG))
    await env.enqueue(short)
    [card] = await env.meta.wait_for_messages("966502", 1, timeout=20)
    assert card["interactive"]["type"] == "button"
    assert card["interactive"]["body"]["text"] == "Two picks:"


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
async def test_messenger_and_instagram_send_text_then_generic_template(
    env: Env, running: dict[str, DeliveryWorker], kind: str
) -> None:
    cid, _ = await env.channel(kind)
    text = "مرحبا " * 400  # 2,400 chars, 4,800+ bytes: split under both platforms' limits
    await env.enqueue(reply(kind, cid, f"{kind}-u1", text, products=(SHOES, MUG)))
    split = split_utf8 if kind == "instagram" else default_split
    expected = len(split(text)) + 1  # the text parts, then the cards
    sent = await env.meta.wait_for_messages(f"{kind}-u1", expected, timeout=20)
    assert len(sent) == expected >= 3
    texts = [m["message"]["text"] for m in sent if "text" in m["message"]]
    assert "".join(texts).replace(" ", "") == text.replace(" ", "")
    template = sent[-1]["message"]
    elements = template["attachment"]["payload"]["elements"]
    assert [e["title"] for e in elements] == ["AirFlow Running Shoes", "Red mug"]
    assert template["quick_replies"][0]["payload"] == "product:AirFlow Running Shoes"
    assert all(m["messaging_type"] == "RESPONSE" for m in sent)


async def test_telegram_products_get_choice_buttons(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    cid, _ = await env.channel("telegram")
    await env.enqueue(reply("telegram", cid, "4242", "Found:", products=(SHOES,)))
    [msg] = await env.tg.wait_for_messages(4242, 1, timeout=20)
    row = msg["reply_markup"]["inline_keyboard"][0]
    assert row[0]["callback_data"] == "AirFlow Running Shoes"


async def test_transient_errors_are_retried_and_delivered_once(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    cid, _ = await env.channel("whatsapp")
    env.meta.fail_next(1, 400, 130429, "Rate limit hit", retry_after=1)
    env.meta.fail_next(1, 400, 131056, "Pair rate limit", retry_after=1)
    env.meta.fail_next(1, 429, 4, "Application request limit reached", retry_after=1)
    env.meta.fail_next(2, 500, 1, "An unknown error occurred")
    r = reply("whatsapp", cid, "966510", "hello there")
    await env.enqueue(r)
    [msg] = await env.meta.wait_for_messages("966510", 1, timeout=30)
    assert msg["text"]["body"] == "hello there"
    assert await env.dead(r.outbox_id) == []
    assert await env.redis.get(keys.sent_marker("m1", r.outbox_id))


@pytest.mark.parametrize(
    "code, status, fragment",
    [(190, 401, "invalid token"), (131047, 400, "outside the messaging window")],
)
async def test_permanent_errors_go_to_dead_letters_with_reason(
    env: Env, running: dict[str, DeliveryWorker], code: int, status: int, fragment: str
) -> None:
    cid, _ = await env.channel("whatsapp")
    customer = f"96652{code}"
    env.meta.fail_next(1, status, code, "boom")
    r = reply("whatsapp", cid, customer, "hi")
    await env.enqueue(r)
    for _ in range(200):
        if dead := await env.dead(r.outbox_id):
            break
        await asyncio.sleep(0.05)
    assert fragment in dead[0]["reason"] and str(code) in dead[0]["reason"]
    assert env.meta.sent_to(customer) == []
    # The operator fixes the cause and replays: delivered, and gone from the dead letters.
    assert await Outbox(env.redis).replay_dead_letter(dead[0]["id"], "m1") is not None
    [msg] = await env.meta.wait_for_messages(customer, 1, timeout=20)
    assert msg["text"]["body"] == "hi"
    assert await env.dead(r.outbox_id) == []


async def test_outside_window_whatsapp_is_parked_or_templated_and_messenger_uses_human_agent(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    day = 24 * 3600
    plain, _ = await env.channel("whatsapp")
    parked = reply("whatsapp", plain, "966530", "late", age_s=day + 60)
    await env.enqueue(parked)
    templated, _ = await env.channel("whatsapp", template_name="follow_up", template_language="en")
    await env.enqueue(reply("whatsapp", templated, "966531", "late", age_s=day + 60))
    [tpl] = await env.meta.wait_for_messages("966531", 1, timeout=20)
    assert tpl["type"] == "template" and tpl["template"]["name"] == "follow_up"
    ms, _ = await env.channel("messenger")
    human = reply(
        "messenger", ms, "psid-h", "An agent here", age_s=3 * day, trace={"author": "human"}
    )
    bot = reply("messenger", ms, "psid-b", "bot reply", age_s=3 * day)
    await env.enqueue(human)
    await env.enqueue(bot)
    [tagged] = await env.meta.wait_for_messages("psid-h", 1, timeout=20)
    assert tagged["messaging_type"] == "MESSAGE_TAG" and tagged["tag"] == "HUMAN_AGENT"
    for _ in range(200):
        if await env.dead(parked.outbox_id) and await env.dead(bot.outbox_id):
            break
        await asyncio.sleep(0.05)
    [p] = await env.dead(parked.outbox_id)
    assert p["reason"].startswith("parked: outside the WhatsApp 24-hour window")
    assert (await env.dead(bot.outbox_id))[0]["reason"].startswith("parked")
    assert env.meta.sent_to("966530") == [] and env.meta.sent_to("psid-b") == []


async def test_blocked_telegram_customer_is_marked_unreachable(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    cid, _ = await env.channel("telegram")
    env.tg.block_chat(5151)
    first = reply("telegram", cid, "5151", "one")
    await env.enqueue(first)
    for _ in range(200):
        if await env.dead(first.outbox_id):
            break
        await asyncio.sleep(0.05)
    assert await env.redis.exists(keys.unreachable("m1", cid, "5151"))
    calls = len([c for c in env.tg.calls if c.json.get("chat_id") == 5151])
    second = replace_received(reply("telegram", cid, "5151", "two"), 1.0)  # older than block
    await env.enqueue(second)
    for _ in range(200):
        if await env.dead(second.outbox_id):
            break
        await asyncio.sleep(0.05)
    [d] = await env.dead(second.outbox_id)
    assert "unreachable" in d["reason"]
    assert len([c for c in env.tg.calls if c.json.get("chat_id") == 5151]) == calls  # no call
    env.tg.unblock_chat(5151)
    third = reply("telegram", cid, "5151", "three")  # they wrote again after the block
    await env.enqueue(third)
    [msg] = await env.tg.wait_for_messages(5151, 1, timeout=20)
    assert msg["text"] == "three"


def replace_received(r: OutboundReply, received_at: float) -> OutboundReply:
    data = r.to_dict()
    data["received_at"] = received_at
    return OutboundReply.from_dict(data)


async def test_platform_outage_then_every_reply_delivered_once_in_order(
    env: Env, running: dict[str, DeliveryWorker]
) -> None:
    cid, _ = await env.channel("messenger")
    customers = [f"psid-out-{i}" for i in range(3)]
    env.meta.go_down()
    for n in range(4):
        for c in customers:
            await env.enqueue(reply("messenger", cid, c, f"{c} message {n}"))
    await asyncio.sleep(OUTAGE_S)
    assert all(env.meta.sent_to(c) == [] for c in customers)
    env.meta.come_back()
    for c in customers:
        sent = await env.meta.wait_for_messages(c, 4, timeout=OUTAGE_S + 30)
        assert [m["message"]["text"] for m in sent] == [f"{c} message {n}" for n in range(4)]
    await asyncio.sleep(0.5)
    assert all(len(env.meta.sent_to(c)) == 4 for c in customers)  # nothing doubled
    assert running["messenger"].dead == 0


async def test_chats_queued_behind_a_bot_at_its_rate_wait_in_line(env: Env) -> None:
    """A bot at its platform's rate with 40 chats waiting: each send costs about one check,
    not one per waiting chat per interval (every lane slept the same wait and retried together),
    and a chat held back by its own pace does not hold up the others."""
    rules = (SendRule("recipient", 1.0, 1.0), SendRule("channel", 100.0, 5.0))
    limiter = RedisRateLimiter(env.redis, "telegram", rules)

    async def checks() -> int:
        stats = await env.redis.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))

    before = await checks()
    await asyncio.gather(*(limiter.acquire("ch_line", str(chat)) for chat in range(40)))
    assert await checks() - before <= 2 * 40 + 5  # the herd: hundreds (40 lanes, ~35 retries)
    slow = asyncio.create_task(limiter.acquire("ch_line", "0"))  # its chat's 1/s pace: waits
    await asyncio.sleep(0.05)
    await limiter.acquire("ch_line", "99")
    assert not slow.done()  # chat 99 went first: it was not in line behind chat 0
    await asyncio.wait_for(slow, 2.0)
    assert not limiter._lines  # nothing left behind once every lane is through


async def test_rate_buckets_are_shared_between_processes(env: Env) -> None:
    """Two limiters (as in two processes) draw from ONE Redis bucket per chat."""
    rules = (SendRule("recipient", 1.0, 1.0),)
    a = RedisRateLimiter(env.redis, "telegram", rules)
    b = RedisRateLimiter(env.redis, "telegram", rules)
    await a.acquire("ch_rate", "77")  # takes the only token
    key = keys.rate_bucket("telegram", "recipient", "ch_rate:77")
    wait_ms, _ = await b._script(keys=[key], args=[1000.0, 1.0])
    assert int(wait_ms) > 0  # b must wait for a's booking
    other = keys.rate_bucket("telegram", "recipient", "ch_rate:78")
    assert (await b._script(keys=[other], args=[1000.0, 1.0]))[0] == 0  # other chats free
