"""Routes local replies (webchat, playground) to whoever waits for them in this gateway.

Replies arrive on one Redis pub/sub channel shared by all gateway replicas; each replica keeps
only the waiters and sockets it holds, so the replica a customer is connected to delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import web

from connectors.webchat import reply_frame
from engine.adapters.redis import keys
from engine.adapters.redis.subscription import Subscription


class ReplyHub:
    def __init__(self, redis_url: str) -> None:
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._subscription = Subscription(redis_url, keys.replies_channel(), self._on_message)

    async def start(self) -> None:
        await self._subscription.start()

    async def stop(self) -> None:
        await self._subscription.stop()

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

    async def _on_message(self, _channel: str, data: bytes) -> None:
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(reply, dict):
            await self._route(reply)

    async def _route(self, reply: dict[str, Any]) -> None:
        for message_id in reply.get("in_reply_to") or []:
            fut = self._waiters.pop(str(message_id), None)
            if fut is not None and not fut.done():
                fut.set_result(reply)
        key = f"{reply.get('merchant_id')}:{reply.get('channel_id')}:{reply.get('customer_id')}"
        for ws in list(self._sockets.get(key, ())):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(orjson.dumps(reply_frame(reply)).decode())
