"""Settlement leases over Redis: ``SET key token NX PX ttl`` takes one, a compare-and-delete
gives it back, so a replica whose lease expired mid-work cannot release the next holder's."""

from __future__ import annotations

import secrets
from typing import Final

import redis.asyncio as aioredis

from engine.adapters.redis import keys

_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisSettlementLeases:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._release = redis.register_script(_RELEASE_LUA)

    async def acquire(self, merchant_id: str, date: str, ttl_ms: int) -> str | None:
        token = secrets.token_hex(8)
        key = keys.settlement_lease(merchant_id, date)
        taken = await self._redis.set(key, token, nx=True, px=max(1, ttl_ms))
        return token if taken else None

    async def release(self, merchant_id: str, date: str, token: str) -> None:
        await self._release(keys=[keys.settlement_lease(merchant_id, date)], args=[token])
