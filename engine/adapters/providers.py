"""Senders: the I/O half of each channel's output (the pure half is in ``connectors/``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis

from connectors import instagram, messenger, meta, telegram, whatsapp
from connectors.base import Delivered, PermanentFailure, ProviderCall, RetryLater, SendOutcome
from engine.adapters.records import Channel
from engine.adapters.redis import keys
from engine.domain.messages import OutboundReply

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

    def forget(self, channel_id: str) -> None:
        """Drop a cached entry at once (this process just changed or deleted the channel)."""
        self._items.pop(channel_id, None)


WINDOW_S = 24 * 3600
HUMAN_AGENT_WINDOW_S = 7 * 24 * 3600


def is_human_agent_reply(reply: OutboundReply) -> bool:
    """Replies typed by a person (an agent console writes ``trace.author = "human"``)."""
    return reply.trace.get("author") == "human" or reply.intent == "human_agent"


class ChannelSender:
    """The I/O half of delivery for one channel kind: resolve the channel, apply the
    messaging-window policy, build the calls with the pure connector, make one HTTP call.

    The 24-hour window is measured from ``reply.received_at`` (the customer's message the
    reply answers, carried in the outbox entry), so no extra lookup is needed: a reply that
    sat out an outage or a dead-letter replay past the window is caught here, before sending.
    """

    def __init__(
        self,
        kind: str,
        session: aiohttp.ClientSession,
        channels: ChannelLookup,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kind = kind
        self._session = session
        self._channels = channels
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure:
        channel = await self._channels.channel(reply.channel_id)
        if channel is None:
            return PermanentFailure("channel no longer exists")
        if channel.kind != self._kind:
            return PermanentFailure(f"channel is {channel.kind}, not {self._kind}")
        try:
            return self._build(channel, reply)
        except ValueError as exc:  # a misconfigured channel (bad id/token shape)
            return PermanentFailure(f"channel misconfigured: {exc}")

    def _build(
        self, channel: Channel, reply: OutboundReply
    ) -> list[ProviderCall] | PermanentFailure:
        age = self._clock() - reply.received_at
        if channel.kind == "telegram":
            return telegram.build_send_message(channel.api_base, channel.bot_token, reply)
        if channel.kind == "whatsapp":
            if age > WINDOW_S:
                if channel.template_name:
                    return [
                        whatsapp.build_template(
                            channel.api_base,
                            channel.api_version,
                            channel.account_id,
                            channel.access_token,
                            reply.customer_id,
                            channel.template_name,
                            channel.template_language
                            or ("ar" if reply.language.startswith("ar") else "en"),
                        )
                    ]
                return PermanentFailure(
                    "parked: outside the WhatsApp 24-hour window and no template is configured"
                )
            return whatsapp.build_messages(
                channel.api_base,
                channel.api_version,
                channel.account_id,
                channel.access_token,
                reply,
            )
        if channel.kind in ("messenger", "instagram"):
            tag: str | None = None
            if age > WINDOW_S:
                if is_human_agent_reply(reply) and age <= HUMAN_AGENT_WINDOW_S:
                    tag = messenger.HUMAN_AGENT
                else:
                    return PermanentFailure(
                        f"parked: outside the {channel.kind} 24-hour window"
                        + (
                            " (and past the 7-day human-agent window)"
                            if is_human_agent_reply(reply)
                            else ""
                        )
                    )
            build = (
                instagram.build_messages
                if channel.kind == "instagram"
                else messenger.build_messages
            )
            return build(
                channel.api_base,
                channel.api_version,
                channel.account_id,
                channel.access_token,
                reply,
                tag=tag,
            )
        return PermanentFailure(f"unsupported channel kind {channel.kind}")

    async def send(self, call: ProviderCall) -> SendOutcome:
        try:
            async with self._session.request(
                call.method, call.url, json=call.json, headers=call.headers, timeout=self._timeout
            ) as resp:
                body = await resp.read()
                if self._kind == "telegram":
                    return telegram.interpret_response(resp.status, body)
                return meta.interpret_response(
                    resp.status, body, resp.headers.get("Retry-After"), product=self._kind
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            return RetryLater(f"network: {type(exc).__name__}")


class TelegramSender(ChannelSender):
    """Kept for callers of the spine: the Telegram flavour of :class:`ChannelSender`."""

    def __init__(
        self, session: aiohttp.ClientSession, channels: ChannelLookup, timeout_s: float = 10.0
    ) -> None:
        super().__init__("telegram", session, channels, timeout_s)


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
