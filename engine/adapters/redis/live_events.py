"""Live events for agents: one Redis pub/sub channel per merchant (the ``LiveEvents`` port).

Published by the gateway (staff actions) and by the conversation hosts (customer messages,
bot replies, cart changes); relayed to agents' WebSockets by ``engine.http.live``. Best effort
by design: an event is a hint to refresh a screen, the records are the truth, so a publish
that fails or stalls is dropped (bounded by a timeout) and never raises into its caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import orjson

from engine.adapters.redis import keys

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0


class Publisher(Protocol):
    """What publishing needs of a Redis client (``redis.asyncio.Redis``)."""

    def publish(self, channel: str, message: bytes) -> Awaitable[Any]: ...


def channel(merchant_id: str) -> str:
    return keys.agent_events(merchant_id)


def encode(kind: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "data": data})


async def publish(
    redis: Publisher,
    merchant_id: str,
    kind: str,
    data: dict[str, Any],
    timeout_s: float = PUBLISH_TIMEOUT_S,
) -> bool:
    """True when Redis took the event; False (logged, never raised) otherwise."""
    try:
        await asyncio.wait_for(
            _wait(redis.publish(channel(merchant_id), encode(kind, data))), timeout_s
        )
        return True
    except Exception:
        log.warning("live event not published", extra={"kind": kind})
        return False


async def _wait(pending: Awaitable[Any]) -> Any:
    return await pending


class RedisLiveEvents:
    """``engine.services.ports.LiveEvents`` over a Redis client (best effort, bounded)."""

    def __init__(self, redis: Publisher, timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self._redis = redis
        self._timeout = timeout_s

    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool:
        return await publish(self._redis, merchant_id, kind, data, self._timeout)
