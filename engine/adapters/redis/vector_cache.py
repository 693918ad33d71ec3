"""The shared (L2) query-embedding cache on Redis (the ``SharedVectorCache`` port).

Best effort by design: a vector that cannot be read is recomputed by the model, so a Redis
error or a slow answer (bounded by a timeout) is a miss, and a failed write is dropped; neither
ever fails the customer's turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.adapters.redis import keys

log = logging.getLogger(__name__)

TIMEOUT_S = 0.25


class RedisVectorCache:
    def __init__(self, redis: Any, timeout_s: float = TIMEOUT_S) -> None:
        self._redis = redis
        self._timeout = timeout_s

    async def get_many(self, cache_keys: list[str]) -> list[bytes | None]:
        if not cache_keys:
            return []
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._redis.mget([keys.query_embedding(k) for k in cache_keys])
        except Exception as exc:  # a miss, not an error: the model answers instead
            log.warning("query cache read failed: %s", type(exc).__name__)
            return [None] * len(cache_keys)
        return [v if isinstance(v, bytes) else None for v in found]

    async def put_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        if not items or ttl_s <= 0:
            return
        try:
            async with asyncio.timeout(self._timeout):
                pipe = self._redis.pipeline(transaction=False)
                for k, blob in items.items():
                    pipe.set(keys.query_embedding(k), blob, ex=ttl_s)
                await pipe.execute()
        except Exception as exc:  # dropped: the next miss writes it again
            log.warning("query cache write failed: %s", type(exc).__name__)
