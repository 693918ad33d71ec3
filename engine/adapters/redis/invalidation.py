"""Telling every process that a merchant's profile changed (pub/sub, best effort).

The hosts cache merchant profiles (read on nearly every turn); a notice lets an edit in the
console show in the very next reply instead of after the cache's TTL. A notice lost to a Redis
restart only leaves the TTL as the bound, so publishing never fails the caller's request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.adapters.redis import keys

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0


async def merchant_changed(redis: Any, merchant_id: str) -> None:
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await redis.publish(keys.merchant_changes(), merchant_id.encode())
    except Exception as exc:  # the cache's TTL still bounds how stale a profile gets
        log.warning("merchant change notice not published: %s", type(exc).__name__)
