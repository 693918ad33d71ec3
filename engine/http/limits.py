"""Rate limits and login throttles, counted in Redis so every gateway replica shares them.

Fixed windows (INCR + EXPIRE in one pipeline): one round trip per request, exact per window,
and the reset time is what the ``RateLimit-Reset`` header advertises.

A window's count only grows, so a bucket found over its limit stays over until its window
ends: each process remembers such buckets (bounded) and refuses their requests without Redis.
A flood that is being refused then costs no round trip and no write (every write is an fsync
of the AOF the acknowledged inbox shares), and a request refused that way counts in none of
its buckets, so it spends nothing of another bucket's budget (its API key's, say).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
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
    MAX_REMEMBERED = 8192  # buckets known to be over their limit, per process (LRU)

    def __init__(
        self, redis: aioredis.Redis, window_s: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._window = window_s
        self._clock = clock
        # window key of a refused bucket -> the count Redis answered (its count is at least that)
        self._refused: OrderedDict[str, int] = OrderedDict()

    def _floor(self, key: str) -> int:
        """What this process knows the window's count to be at least (0: nothing known)."""
        count = self._refused.get(key)
        if count is None:
            return 0
        self._refused.move_to_end(key)
        return count

    def _remember(self, key: str, count: int) -> None:
        self._refused[key] = max(count, self._refused.get(key, 0))
        self._refused.move_to_end(key)
        while len(self._refused) > self.MAX_REMEMBERED:
            self._refused.popitem(last=False)

    async def hit(self, buckets: list[tuple[str, int]]) -> Verdict:
        """Count one request in every bucket; the tightest bucket decides."""
        now = int(self._clock())
        window, reset = now // self._window, self._window - now % self._window
        names = [keys.rate_window(name, window) for name, _ in buckets]
        for key, (_, limit) in zip(names, buckets, strict=True):
            if self._floor(key) > limit:
                return Verdict(False, limit, 0, reset)
        pipe = self._redis.pipeline(transaction=False)
        for key in names:
            pipe.incr(key)
            pipe.expire(key, self._window + 1)
        counts = (await pipe.execute())[0::2]
        worst: Verdict | None = None
        for key, (_, limit), count in zip(names, buckets, counts, strict=True):
            v = Verdict(int(count) <= limit, limit, limit - int(count), reset)
            if not v.allowed:
                self._remember(key, int(count))
            if worst is None or v.remaining < worst.remaining:
                worst = v
        assert worst is not None
        return worst

    async def hit_unless(self, name: str, limit: int, guard: str, guard_limit: int) -> bool:
        """Count one request in ``name`` unless ``guard`` is already at ``guard_limit``; both
        in ONE round trip (this runs on every webhook). True when the request may proceed."""
        window = int(self._clock()) // self._window
        key, guard_key = keys.rate_window(name, window), keys.rate_window(guard, window)
        if self._floor(key) > limit or self._floor(guard_key) >= guard_limit:
            return False
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(guard_key)
        pipe.incr(key)
        pipe.expire(key, self._window + 1)
        guarded, count, _ = await pipe.execute()
        guarded, count = int(guarded or 0), int(count)
        if guarded >= guard_limit:
            self._remember(guard_key, guarded)
        if count > limit:
            self._remember(key, count)
        return guarded < guard_limit and count <= limit


class LoginThrottle:
    """Login guessing is slowed per account *and* address, so a stranger cannot lock an owner out.

    Counting failures per account alone (any IP) let anyone who knows an email keep that
    account locked forever by failing five times every window. Here:

    * failures count per (account, client address): one address that guesses wrong
      ``max_failures`` times waits out the window for that account; other addresses do not;
    * failures count per account too, and a flood from many addresses (``FLOOD_FACTOR`` x
      ``max_failures``) locks the account only for addresses that never logged in to it: the
      owner's usual address (remembered on each success, 30 days) still gets in;
    * all attempts count per address (``max_per_ip``), the client address being the real
      client behind a trusted proxy (``engine.http.context.client_ip``).
    """

    WINDOW_S = 15 * 60
    KNOWN_TTL_S = 30 * 24 * 3600
    FLOOD_FACTOR = 10
    MAX_KNOWN = 50

    def __init__(self, redis: aioredis.Redis, max_failures: int, max_per_ip: int) -> None:
        self._redis = redis
        self._max_failures = max_failures
        self._max_ip = max_per_ip

    def _keys(self, email: str, ip: str) -> tuple[str, str, str, str]:
        account = digest(email.lower())
        return (
            keys.login_failures("acct", account),
            keys.login_failures("acct-ip", digest(f"{email.lower()}|{ip}")),
            keys.login_failures("ip", digest(ip)),
            keys.login_known(account),
        )

    async def check(self, email: str, ip: str) -> int:
        """0 when the attempt may proceed, else the seconds to wait (Retry-After)."""
        acct, pair, ipk, known = self._keys(email, ip)
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(ipk)
        pipe.ttl(ipk)
        pipe.get(pair)
        pipe.ttl(pair)
        pipe.get(acct)
        pipe.ttl(acct)
        pipe.sismember(known, digest(ip))
        (
            ip_count,
            ip_ttl,
            pair_failures,
            pair_ttl,
            failures,
            acct_ttl,
            is_known,
        ) = await pipe.execute()
        if int(ip_ttl) < 0:  # first attempt of a window (EXPIRE NX needs Redis 7)
            await self._redis.expire(ipk, self.WINDOW_S)
            ip_ttl = self.WINDOW_S
        if int(ip_count) > self._max_ip:
            return max(1, int(ip_ttl))
        if pair_failures is not None and int(pair_failures) >= self._max_failures:
            return max(1, int(pair_ttl))
        flood = self._max_failures * self.FLOOD_FACTOR
        if failures is not None and int(failures) >= flood and not is_known:
            return max(1, int(acct_ttl))
        return 0

    async def failed(self, email: str, ip: str) -> None:
        acct, pair, _, _ = self._keys(email, ip)
        pipe = self._redis.pipeline(transaction=False)
        for key in (acct, pair):
            pipe.incr(key)
            pipe.ttl(key)
        _, acct_ttl, _, pair_ttl = await pipe.execute()
        for key, ttl in ((acct, acct_ttl), (pair, pair_ttl)):
            if int(ttl) < 0:
                await self._redis.expire(key, self.WINDOW_S)

    async def succeeded(self, email: str, ip: str) -> None:
        _, pair, _, known = self._keys(email, ip)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(pair)
        pipe.sadd(known, digest(ip))
        pipe.expire(known, self.KNOWN_TTL_S)
        pipe.scard(known)
        *_, size = await pipe.execute()
        if int(size) > self.MAX_KNOWN:  # bounded: forget an arbitrary address
            await self._redis.spop(known)
