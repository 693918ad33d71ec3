"""Rate limits and login throttles, counted in Redis so every gateway replica shares them.

Fixed windows (INCR + EXPIRE in one pipeline): one round trip per request, exact per window,
and the reset time is what the ``RateLimit-Reset`` header advertises.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from engine.adapters.redis import keys


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(self.reset_s),
        }


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, window_s: int) -> None:
        self._redis = redis
        self._window = window_s

    async def hit(self, buckets: list[tuple[str, int]]) -> Verdict:
        """Count one request in every bucket; the tightest bucket decides."""
        window = int(time.time()) // self._window
        reset = self._window - int(time.time()) % self._window
        pipe = self._redis.pipeline(transaction=False)
        for name, _ in buckets:
            key = keys.rate_window(name, window)
            pipe.incr(key)
            pipe.expire(key, self._window + 1)
        counts = (await pipe.execute())[0::2]
        worst: Verdict | None = None
        for (_, limit), count in zip(buckets, counts, strict=True):
            v = Verdict(int(count) <= limit, limit, limit - int(count), reset)
            if worst is None or v.remaining < worst.remaining:
                worst = v
        assert worst is not None
        return worst


class LoginThrottle:
    """Failed logins per account, all attempts per IP, each within a 15-minute window."""

    WINDOW_S = 15 * 60

    def __init__(self, redis: aioredis.Redis, max_failures: int, max_per_ip: int) -> None:
        self._redis = redis
        self._max_failures = max_failures
        self._max_ip = max_per_ip

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        return (
            keys.login_failures("acct", digest(email.lower())),
            keys.login_failures("ip", digest(ip)),
        )

    async def check(self, email: str, ip: str) -> int:
        """0 when the attempt may proceed, else the seconds to wait (Retry-After)."""
        acct, ipk = self._keys(email, ip)
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(ipk)
        pipe.get(acct)
        pipe.ttl(acct)
        pipe.ttl(ipk)
        ip_count, failures, acct_ttl, ip_ttl = await pipe.execute()
        if int(ip_ttl) < 0:  # first attempt of a window (EXPIRE NX needs Redis 7)
            await self._redis.expire(ipk, self.WINDOW_S)
            ip_ttl = self.WINDOW_S
        if int(ip_count) > self._max_ip:
            return max(1, int(ip_ttl))
        if failures is not None and int(failures) >= self._max_failures:
            return max(1, int(acct_ttl))
        return 0

    async def failed(self, email: str, ip: str) -> None:
        acct, _ = self._keys(email, ip)
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(acct)
        pipe.ttl(acct)
        _, ttl = await pipe.execute()
        if int(ttl) < 0:
            await self._redis.expire(acct, self.WINDOW_S)

    async def succeeded(self, email: str, ip: str) -> None:
        acct, _ = self._keys(email, ip)
        await self._redis.delete(acct)
