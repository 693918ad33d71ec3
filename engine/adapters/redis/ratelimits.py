"""Send-rate limits shared by every process through Redis (GCRA in one Lua call).

Platform limits are per bot / number / page and per recipient, not per process: two delivery
actors (or a gateway and an actor) each keeping their own in-memory bucket would together send
twice the allowed rate. Here every bucket is a single Redis key holding its "theoretical arrival
time" (GCRA), and one script checks ALL the buckets of a call and books them only if every one
allows it, so a call never consumes per-chat budget it then fails to get globally.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import redis.asyncio as aioredis

from connectors.base import SendRule
from engine.adapters.redis import keys

_GCRA_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local worst = 0
local news = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local over = new_tat - now - burst * interval
  if over > wait then
    wait = over
    worst = i
  end
  news[i] = new_tat
end
if wait > 0 then return {math.ceil(wait), worst} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.3f', news[i]), 'PX', math.ceil(news[i] - now) + 1000)
end
return {0, 0}
"""
# The script answers [ms until one more fits in every bucket (0: booked), the 1-based index of
# the bucket that is furthest out (0 when booked)].


class SmoothLimiter:
    """Admit or refuse at once (nothing waits) over GCRA buckets: a steady rate with a small
    burst, booked in every bucket or in none, so a frame an address is refused does not spend
    its store's budget.

    A refusal says how long until one more would fit, and that only grows (other processes'
    admissions move the buckets further out, never back): each process refuses the same
    buckets in memory until then (bounded), so a flood being refused costs no round trip.
    """

    MAX_REMEMBERED = 8192  # bucket sets known to be refusing, per process (LRU)

    def __init__(
        self, redis: aioredis.Redis, kind: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kind = kind
        self._script = redis.register_script(_GCRA_LUA)
        self._clock = clock
        self._refusing: OrderedDict[tuple[str, ...], float] = OrderedDict()  # -> until

    async def admit(self, buckets: list[tuple[str, str, float, int]]) -> bool:
        """``buckets``: (scope, subject, rate per second, burst); True when every one admits
        one more."""
        bucket_keys: list[str] = []
        args: list[float] = []
        for scope, subject, rate_per_s, burst in buckets:
            bucket_keys.append(keys.rate_bucket(self._kind, scope, subject))
            args += [1000.0 / rate_per_s, float(max(burst, 1))]
        known = tuple(bucket_keys)
        now = self._clock()
        until = self._refusing.get(known)
        if until is not None:
            if now < until:
                return False
            del self._refusing[known]
        wait_ms, _ = await self._script(keys=bucket_keys, args=args)
        if int(wait_ms) <= 0:
            return True
        self._refusing[known] = now + int(wait_ms) / 1000.0
        self._refusing.move_to_end(known)
        while len(self._refusing) > self.MAX_REMEMBERED:
            self._refusing.popitem(last=False)
        return False


@dataclass(slots=True)
class _Line:
    """A channel's line in this process, kept while some lane is in it or waiting."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class RedisRateLimiter:
    """``acquire`` waits (no busy polling: it sleeps exactly the time GCRA says) until every
    rule for this channel kind admits one more call.

    The lanes of one channel wait for its bucket in line, one at a time per process: a bot at
    its platform's rate with hundreds of chats queued had every lane sleep the same few
    milliseconds and retry together, so each send cost one script call per waiting lane
    (``bench/ttfr.py`` at 160 msg/s on three bots: the delivery actor's CPU per message rose
    from 2.5 ms at 80 msg/s to 7 ms). A lane held back by its own chat's bucket waits out of
    line, so one chat's pace does not hold up the others.
    """

    def __init__(self, redis: aioredis.Redis, kind: str, rules: tuple[SendRule, ...]) -> None:
        self._redis = redis
        self._kind = kind
        self._rules = tuple(r for r in rules if r.rate_per_s > 0)
        self._script = redis.register_script(_GCRA_LUA)
        self._lines: dict[str, _Line] = {}

    async def acquire(self, channel_id: str, recipient: str) -> None:
        if not self._rules:
            return
        bucket_keys: list[str] = []
        args: list[float] = []
        channel_buckets: set[int] = set()
        for i, rule in enumerate(self._rules, start=1):
            if rule.scope == "channel":
                channel_buckets.add(i)
                subject = channel_id
            else:
                subject = f"{channel_id}:{recipient}"
            bucket_keys.append(keys.rate_bucket(self._kind, rule.scope, subject))
            args += [1000.0 / rule.rate_per_s, max(rule.burst, 1.0)]
        line = self._lines.setdefault(channel_id, _Line())
        line.users += 1
        try:
            while True:
                async with line.lock:
                    while True:
                        wait_ms, worst = await self._script(keys=bucket_keys, args=args)
                        if int(wait_ms) <= 0:
                            return
                        if int(worst) not in channel_buckets:
                            break  # this chat's own pace: wait out of line
                        await asyncio.sleep(int(wait_ms) / 1000.0)  # everyone behind would too
                await asyncio.sleep(int(wait_ms) / 1000.0)
        finally:
            line.users -= 1
            if line.users == 0:
                del self._lines[channel_id]
