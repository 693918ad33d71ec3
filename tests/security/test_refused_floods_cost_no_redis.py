"""A flood being refused costs no Redis round trip and no write.

Every rate-limit hit was an ``INCR`` + ``EXPIRE`` in Redis, refused or not, and every write is
an fsync of the AOF the acknowledged inbox shares: a session or webhook flood from one address
kept Redis fsyncing for requests it was refusing. A fixed window's count only grows, so a
bucket found over its limit is refused in-process until its window ends; a GCRA bucket set
that refused is refused in-process for as long as Redis said it would refuse. On a real Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.adapters.redis import keys
from engine.adapters.redis.ratelimits import SmoothLimiter
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.http.limits import RateLimiter

WINDOW_S = 60


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # the start of a window (divisible by 60)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[object]:
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    client = redis_client(srv.url, max_connections=4)
    try:
        yield client
    finally:
        await client.aclose()
        srv.stop()


async def _writes(redis: object) -> int:
    stats = await redis.info("stats")  # type: ignore[attr-defined]
    return int(stats["total_commands_processed"])


async def test_a_refused_bucket_stops_reaching_redis(redis: object) -> None:
    clock = Clock()
    limiter = RateLimiter(redis, WINDOW_S, clock)  # type: ignore[arg-type]
    verdicts = [await limiter.hit([("ip:a", 3), ("key:k", 100)]) for _ in range(50)]
    assert [v.allowed for v in verdicts] == [True] * 3 + [False] * 47
    assert {v.remaining for v in verdicts[4:]} == {0}
    window = int(clock.now) // WINDOW_S
    # Only the first refusal was counted: 46 refused requests reached neither bucket.
    assert await redis.get(keys.rate_window("ip:a", window)) == b"4"  # type: ignore[attr-defined]
    assert await redis.get(keys.rate_window("key:k", window)) == b"4"  # type: ignore[attr-defined]
    before = await _writes(redis)
    assert not (await limiter.hit([("ip:a", 3)])).allowed
    assert await _writes(redis) == before + 1  # the INFO call itself, nothing else
    # Another address is not refused, and the next window starts afresh.
    assert (await limiter.hit([("ip:b", 3)])).allowed
    clock.now += WINDOW_S
    assert (await limiter.hit([("ip:a", 3)])).allowed


async def test_a_bucket_over_a_small_limit_is_not_refused_under_a_larger_one(
    redis: object,
) -> None:
    limiter = RateLimiter(redis, WINDOW_S, Clock())  # type: ignore[arg-type]
    for _ in range(3):
        await limiter.hit([("shared", 2)])
    assert not (await limiter.hit([("shared", 2)])).allowed
    assert (await limiter.hit([("shared", 100)])).allowed


async def test_webhooks_from_an_address_at_its_failure_limit_skip_redis(redis: object) -> None:
    clock = Clock()
    limiter = RateLimiter(redis, WINDOW_S, clock)  # type: ignore[arg-type]
    for _ in range(5):  # five forged webhooks from one address
        await limiter.hit([("wh-bad:a", 1 << 30)])
    assert not await limiter.hit_unless("wh:a", 1000, "wh-bad:a", 5)
    window = int(clock.now) // WINDOW_S
    counted = await redis.get(keys.rate_window("wh:a", window))  # type: ignore[attr-defined]
    for _ in range(20):
        assert not await limiter.hit_unless("wh:a", 1000, "wh-bad:a", 5)
    assert await redis.get(keys.rate_window("wh:a", window)) == counted  # type: ignore[attr-defined]
    assert await limiter.hit_unless("wh:b", 1000, "wh-bad:b", 5)  # another address is served


async def test_refused_frames_stop_reaching_redis_until_one_more_would_fit(
    redis: object,
) -> None:
    clock = Clock()
    frames = SmoothLimiter(redis, "frames", clock)  # type: ignore[arg-type]
    buckets = [("ip", "a", 1.0, 3), ("merchant", "m", 100.0, 100)]  # 1/s, burst 3
    verdicts = [await frames.admit(buckets) for _ in range(5)]
    assert verdicts == [True, True, True, False, False]
    before = await _writes(redis)
    for _ in range(30):
        assert not await frames.admit(buckets)
    assert await _writes(redis) == before + 1  # the INFO call itself, nothing else
    # The store's bucket booked only the three admitted frames: another address is served.
    assert await frames.admit([("ip", "b", 1.0, 3), ("merchant", "m", 100.0, 100)])
    # Redis's clock moves too: once a frame would fit again, it is admitted.
    await asyncio.sleep(1.1)
    clock.now += 1.1
    assert await frames.admit(buckets)
    assert not await frames.admit(buckets)
