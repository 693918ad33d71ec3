"""Routes local replies (webchat, playground) to whoever waits for them in this gateway.

Replies arrive on one Redis pub/sub channel shared by all gateway replicas; each replica keeps
only the waiters and sockets it holds, so the replica a customer is connected to delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from connectors.webchat import reply_frame
from engine.adapters.redis import keys

log = logging.getLogger(__name__)


class ReplyHub:
    def __init__(self, redis_url: str) -> None:
        self._url = redis_url
        self._redis: aioredis.Redis | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        # Its own client: the subscription never holds a connection of the hot path's pool.
        self._redis = aioredis.Redis.from_url(self._url)
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()

    def expect(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[message_id] = fut
        return fut

    def forget(self, message_id: str) -> None:
        self._waiters.pop(message_id, None)

    def attach(self, conversation_key: str, ws: web.WebSocketResponse) -> None:
        self._sockets[conversation_key].add(ws)

    def detach(self, conversation_key: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(conversation_key)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[conversation_key]

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(keys.replies_channel())
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        reply = orjson.loads(message["data"])
                    except orjson.JSONDecodeError:
                        continue
                    await self._route(reply)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reply subscription failed; resubscribing")
                await asyncio.sleep(0.5)

    async def _route(self, reply: dict[str, Any]) -> None:
        for message_id in reply.get("in_reply_to") or []:
            fut = self._waiters.pop(str(message_id), None)
            if fut is not None and not fut.done():
                fut.set_result(reply)
        key = f"{reply.get('merchant_id')}:{reply.get('channel_id')}:{reply.get('customer_id')}"
        for ws in list(self._sockets.get(key, ())):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(orjson.dumps(reply_frame(reply)).decode())
