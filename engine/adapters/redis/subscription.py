"""One Redis pub/sub subscription per process, on a client of its own, that never gives up.

The subscription holds its connection for as long as the process lives, so it never comes out
of the pool the hot path (webhooks, turns) draws from: a subscription per socket once took one
pooled connection each, and ~63 agent tabs stalled every webhook for 20 s. A dropped connection
(Redis restarted from its AOF) resubscribes after a short pause; messages published meanwhile
are lost, which only delays a screen refresh (every subscriber here is best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

log = logging.getLogger(__name__)
OnMessage = Callable[[str, bytes], Awaitable[None] | None]


class Subscription:
    """``pattern=True`` subscribes with PSUBSCRIBE; ``on_message(channel, data)`` per message."""

    def __init__(
        self, redis_url: str, channel: str, on_message: OnMessage, *, pattern: bool = False
    ) -> None:
        self._url = redis_url
        self._channel = channel
        self._on_message = on_message
        self._pattern = pattern
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self._url)
        self._task = asyncio.create_task(self._listen(self._redis))
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()

    async def _listen(self, client: aioredis.Redis) -> None:
        kind = "pmessage" if self._pattern else "message"
        while True:
            try:
                pubsub = client.pubsub()
                if self._pattern:
                    await pubsub.psubscribe(self._channel)
                else:
                    await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != kind:
                        continue
                    channel = message.get("channel")
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    data = message["data"]
                    done = self._on_message(name, data if isinstance(data, bytes) else bytes(data))
                    if done is not None:
                        await done
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("subscription to %s failed; resubscribing", self._channel)
                await asyncio.sleep(0.5)
