"""StreamConsumer on a real (embedded) Redis: pending pages, reclaim of stuck entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from engine.adapters.redis.queues import StreamConsumer
from engine.adapters.redis.server import EmbeddedRedis, redis_client


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis_client(url)
    try:
        yield client
    finally:
        await client.aclose()
        server.stop()


async def test_restarted_consumer_pages_through_its_pending_entries(
    redis: aioredis.Redis,
) -> None:
    first = StreamConsumer(redis, ["s"], "g", "host-0")
    await first.setup()
    for i in range(5):
        await redis.xadd("s", {"m": f'{{"n": {i}}}'})
    taken = await first.read(count=10, block_ms=10)
    assert [e.payload["n"] for e in taken] == [0, 1, 2, 3, 4]
    # "crash": nothing acknowledged. The same consumer name starts again.
    again = StreamConsumer(redis, ["s"], "g", "host-0")
    pages = [await again.read(count=2, block_ms=10) for _ in range(4)]
    assert [[e.payload["n"] for e in p] for p in pages] == [[0, 1], [2, 3], [4], []]


async def test_entries_left_unacknowledged_are_reclaimed(redis: aioredis.Redis) -> None:
    gone = StreamConsumer(redis, ["s"], "g", "gateway-old")
    await gone.setup()
    await redis.xadd("s", {"m": '{"n": 1}'})
    assert len(await gone.read(block_ms=10)) == 1  # taken by a consumer that then vanished
    survivor = StreamConsumer(redis, ["s"], "g", "gateway-new", reclaim_idle_ms=0)
    claimed = await survivor.reclaim()
    assert [e.payload["n"] for e in claimed] == [1]
    await survivor.ack(claimed)
    assert await redis.xlen("s") == 0
