"""A merchant's black-hole ``api_base`` cannot stall the other merchants' replies.

One delivery worker serves every merchant of a kind, over one bounded HTTP pool. A merchant
chooses its channels' ``api_base``; pointed at hosts that accept the connection and never
answer, its replies used to hold every pooled connection (64 per host, 256 in all) while the
other merchants' replies waited behind them, and its backlog sat in unbounded lanes. These
tests run the worker as the delivery actor builds it (the production HTTP session, the
Telegram kind, Redis rate limits, the real outbox stream and ledger) against a fake Telegram
Bot API and raw TCP black holes on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

from connectors import registry
from connectors.base import Delivered, ProviderCall, SendLimits, SendOutcome
from engine.adapters import egress
from engine.adapters.providers import ChannelSender
from engine.adapters.records import Records
from engine.adapters.redis import keys
from engine.adapters.redis.queues import Outbox, StreamConsumer
from engine.adapters.redis.ratelimits import RedisRateLimiter
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox
from engine.domain.messages import OutboundReply
from engine.services.delivery import DeliveryBounds, DeliveryWorker
from engine.services.ports import StreamEntry
from tests.fakes.fake_telegram import FakeTelegram

_ids = itertools.count(1)
GOOD_TOKEN = "222222:good-bot-token"
BAD_TOKEN = "333333:black-hole-token"


class BlackHoles:
    """Listeners that accept connections, read the requests and never answer one."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.accepted = 0
        self.peak_per_port: dict[int, int] = {}
        self._open_per_port: dict[int, int] = {}
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    async def add(self) -> str:
        server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self._servers.append(server)
        port = int(server.sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{port}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = int(writer.get_extra_info("sockname")[1])
        self.accepted += 1
        self.open += 1
        self._open_per_port[port] = self._open_per_port.get(port, 0) + 1
        self.peak = max(self.peak, self.open)
        self.peak_per_port[port] = max(self.peak_per_port.get(port, 0), self._open_per_port[port])
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass  # never a byte back
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            self._open_per_port[port] -= 1
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        for w in list(self._writers):
            w.close()
        for s in self._servers:
            s.close()
            await s.wait_closed()


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    embedded = EmbeddedRedis(tmp_path / "redis")
    client = redis_client(embedded.start(), max_connections=64)
    yield client
    await client.aclose()
    embedded.stop()


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[Records]:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    r = Records(repos, SecretBox(Fernet.generate_key().decode()))
    await r.ensure_indexes()
    yield r
    await repos.close()


def _reply(merchant: str, channel_id: str, customer: str, text: str) -> OutboundReply:
    return OutboundReply(
        outbox_id=f"ob-{next(_ids)}",
        merchant_id=merchant,
        channel_id=channel_id,
        channel_kind="telegram",
        customer_id=customer,
        text=text,
        intent="product_search",
        handoff=False,
        in_reply_to=("x",),
        received_at=time.time(),
        language="en",
    )


async def _enqueue(redis: aioredis.Redis, replies: Sequence[OutboundReply]) -> None:
    pipe = redis.pipeline(transaction=False)
    for r in replies:
        pipe.xadd(keys.outbox_stream("telegram"), {"m": orjson.dumps(r.to_dict())})
    await pipe.execute()


async def test_a_black_hole_merchant_does_not_stall_another_merchants_replies(
    redis: aioredis.Redis, records: Records
) -> None:
    holes = BlackHoles()
    session = egress.session(allow_private=True)  # the delivery actor's pool: 256, 64 per host
    bounds = DeliveryBounds(send_timeout_s=3.0)
    # Five bots of the attacker's own: Telegram's per-bot limit does not slow the flood.
    rules = registry.KINDS["telegram"].send_rules(SendLimits(telegram_per_bot=1e4))
    worker = DeliveryWorker(
        StreamConsumer(redis, [keys.outbox_stream("telegram")], keys.OUTBOX_GROUP, "t-0"),
        Outbox(redis),
        # The pool-level deadline is long on purpose: what frees the pool is the worker's own
        # bounds, not aiohttp giving up.
        ChannelSender(registry.KINDS["telegram"], session, records, 60.0, allow_private=True),
        RedisRateLimiter(redis, "telegram", rules),
        bounds=bounds,
    )
    try:
        async with FakeTelegram(tokens=(GOOD_TOKEN,)) as good:
            attacker = "m_attacker"
            bad_channels = [
                await records.create_channel(
                    attacker, "telegram", await holes.add(), BAD_TOKEN, "s"
                )
                for _ in range(5)  # five hosts: 5 x 64 pooled connections > the pool's 256
            ]
            good_channel = await records.create_channel(
                "m_shop", "telegram", good.base_url, GOOD_TOKEN, "s"
            )
            await _enqueue(
                redis,
                [
                    _reply(attacker, ch, f"{900_000 + i * 100 + n}", "into the void")
                    for i, ch in enumerate(bad_channels)
                    for n in range(70)
                ],
            )
            task = asyncio.create_task(worker.run())
            for _ in range(200):  # the attacker's calls are out and hanging
                if holes.open >= min(250, bounds.inflight_per_merchant):
                    break
                await asyncio.sleep(0.05)
            customers = [str(7_000 + n) for n in range(20)]
            await _enqueue(
                redis,
                [_reply("m_shop", good_channel, c, f"your answer, {c}") for c in customers],
            )
            for c in customers:  # well inside the 60 s the pool would have made them wait
                [sent] = await good.wait_for_messages(c, 1, timeout=20)
                assert sent["text"] == f"your answer, {c}"
            assert holes.accepted > 0  # the attacker's calls were really made ...
            assert holes.peak <= bounds.inflight_per_merchant  # ... within its caps
            assert max(holes.peak_per_port.values()) <= bounds.inflight_per_channel
            await worker.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for c in customers:  # nothing was sent twice
                assert len(good.sent_to(c)) == 1
    finally:
        await holes.close()
        await session.close()


# -- the buffer bounds, without Redis or HTTP --------------------------------------------------


@dataclass
class FakeStream:
    entries: list[StreamEntry]
    acked: list[str] = field(default_factory=list)

    async def setup(self) -> None:
        return None

    async def read(self, count: int = 64, block_ms: int = 1000) -> list[StreamEntry]:
        taken, self.entries = self.entries[:count], self.entries[count:]
        if not taken:
            await asyncio.sleep(block_ms / 1000)
        return taken

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        self.acked += [e.entry_id for e in entries]


class Ledger:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def already_sent(self, reply: OutboundReply) -> bool:
        return reply.outbox_id in self.sent

    async def mark_sent(self, reply: OutboundReply, provider_message_id: str) -> None:
        self.sent.append(reply.outbox_id)

    async def unreachable_since(self, reply: OutboundReply) -> float | None:
        return None

    async def mark_unreachable(self, reply: OutboundReply, reason: str) -> None:
        return None

    async def dead_letter(self, reply: OutboundReply, reason: str, attempts: int) -> None:
        return None


class HangingForOne:
    """A sender whose calls to one channel never come back."""

    def __init__(self, stalled: str) -> None:
        self.stalled = stalled
        self.hanging = 0

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall]:
        return [ProviderCall("POST", reply.channel_id, {"id": reply.outbox_id}, reply.customer_id)]

    async def send(self, call: ProviderCall) -> SendOutcome:
        if call.url == self.stalled:
            self.hanging += 1
            await asyncio.Event().wait()
        return Delivered(str(call.json["id"]))


def _entry(reply: OutboundReply) -> StreamEntry:
    return StreamEntry("outbox:telegram", f"{next(_ids)}-0", reply.to_dict())


async def test_a_stalled_channels_backlog_is_bounded_and_left_pending() -> None:
    flood = [_reply("m_a", "ch_stalled", f"c{n}", "x") for n in range(300)]
    others = [_reply("m_b", "ch_ok", f"d{n}", "y") for n in range(10)]
    flood_entries = [_entry(r) for r in flood]
    stream = FakeStream(flood_entries + [_entry(r) for r in others])
    ledger = Ledger()
    sender = HangingForOne("ch_stalled")
    worker = DeliveryWorker(
        stream,
        ledger,
        sender,
        None,
        bounds=DeliveryBounds(inflight_per_channel=2, queued_per_channel=50),
    )
    task = asyncio.create_task(worker.run())
    for _ in range(200):
        if len(ledger.sent) == len(others):
            break
        await asyncio.sleep(0.02)
    assert sorted(ledger.sent) == sorted(r.outbox_id for r in others)
    assert sender.hanging == 2  # only two calls of the stalled channel at a time
    assert worker.deferred == len(flood) - 50  # the rest was not buffered ...
    assert not {e.entry_id for e in flood_entries} & set(stream.acked)  # ... it stays pending
    await worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
