"""Senders: the I/O half of each channel's output (the pure half is in ``connectors/``)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis

from connectors import telegram
from connectors.base import Delivered, PermanentFailure, ProviderCall, RetryLater, SendOutcome
from engine import keys
from engine.messages import OutboundReply
from engine.records import Channel

log = logging.getLogger(__name__)


class ChannelLookup(Protocol):
    async def channel(self, channel_id: str) -> Channel | None: ...


class CachedChannels:
    """L1 cache of decrypted channel configs; a short TTL picks up rotated tokens."""

    def __init__(self, source: ChannelLookup, ttl_s: float = 30.0, max_items: int = 10_000):
        self._source = source
        self._ttl = ttl_s
        self._max = max_items
        self._items: dict[str, tuple[float, Channel | None]] = {}

    async def channel(self, channel_id: str) -> Channel | None:
        now = time.monotonic()
        hit = self._items.get(channel_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = await self._source.channel(channel_id)
        if len(self._items) >= self._max:
            self._items.pop(next(iter(self._items)))
        self._items[channel_id] = (now, value)
        return value


class TelegramSender:
    def __init__(
        self, session: aiohttp.ClientSession, channels: ChannelLookup, timeout_s: float = 10.0
    ) -> None:
        self._session = session
        self._channels = channels
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure:
        channel = await self._channels.channel(reply.channel_id)
        if channel is None:
            return PermanentFailure("channel no longer exists")
        return telegram.build_send_message(channel.api_base, channel.bot_token, reply)

    async def send(self, call: ProviderCall) -> SendOutcome:
        try:
            async with self._session.request(
                call.method, call.url, json=call.json, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                return telegram.interpret_response(resp.status, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return RetryLater(f"network: {type(exc).__name__}")


class LocalSender:
    """Webchat and playground replies: published to the gateways, which hold the sockets."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure:
        return [ProviderCall(method="PUBLISH", url=keys.replies_channel(), json=reply.to_dict())]

    async def send(self, call: ProviderCall) -> SendOutcome:
        try:
            await self._redis.publish(call.url, orjson.dumps(call.json))
        except Exception as exc:  # redis errors are transient for us
            return RetryLater(f"redis: {type(exc).__name__}")
        return Delivered(str(call.json.get("outbox_id", "")))
