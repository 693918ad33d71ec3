"""The I/O half of every channel's output: HTTP to providers, pub/sub to the gateways.

What to send and what an answer means is the channel kind's (``connectors/``); this module only
moves bytes, so one implementation serves every kind.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis

from connectors.base import (
    ChannelKind,
    Delivered,
    PermanentFailure,
    ProviderCall,
    ProviderDefaults,
    RetryLater,
    SendLimits,
    SendOutcome,
)
from engine.adapters import egress
from engine.adapters.redis import keys
from engine.config import Settings
from engine.domain.channels import Channel
from engine.domain.messages import OutboundReply

log = logging.getLogger(__name__)

# A provider's answer is read up to this much: an answer is a small JSON object, and a
# misbehaving host must not make a delivery actor buffer megabytes.
MAX_ANSWER_BYTES = 64 * 1024
# What a channel id looks like (``records.new_id("ch")``).
CHANNEL_ID = re.compile(r"^ch_[0-9a-f]{16}$")


class ChannelLookup(Protocol):
    async def channel(self, channel_id: str) -> Channel | None: ...


class CachedChannels:
    """L1 cache of decrypted channel configs; a short TTL picks up rotated tokens.

    Unknown ids are remembered apart, in a smaller map with a shorter life, so a flood of
    random channel ids (an anonymous ``POST /webhooks/...``) can never evict the channels that
    exist; ids that cannot be channel ids are refused without a lookup at all.
    """

    def __init__(
        self,
        source: ChannelLookup,
        ttl_s: float = 30.0,
        max_items: int = 10_000,
        *,
        max_unknown: int = 2_000,
        unknown_ttl_s: float = 5.0,
    ):
        self._source = source
        self._ttl = ttl_s
        self._max = max_items
        self._items: dict[str, tuple[float, Channel]] = {}
        self._unknown: dict[str, float] = {}
        self._max_unknown = max_unknown
        self._unknown_ttl = unknown_ttl_s

    async def channel(self, channel_id: str) -> Channel | None:
        if not CHANNEL_ID.match(channel_id):
            return None
        now = time.monotonic()
        hit = self._items.get(channel_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        missed = self._unknown.get(channel_id)
        if missed is not None and now - missed < self._unknown_ttl:
            return None
        value = await self._source.channel(channel_id)
        if value is None:
            if len(self._unknown) >= self._max_unknown:
                self._unknown.pop(next(iter(self._unknown)))
            self._unknown[channel_id] = now
            return None
        self._unknown.pop(channel_id, None)
        if len(self._items) >= self._max:
            self._items.pop(next(iter(self._items)))
        self._items[channel_id] = (now, value)
        return value

    def forget(self, channel_id: str) -> None:
        """Drop a cached entry at once (this process just changed or deleted the channel)."""
        self._items.pop(channel_id, None)
        self._unknown.pop(channel_id, None)


class ChannelSender:
    """The I/O half of delivery for one provider kind: resolve the channel, ask the kind for
    its calls (the messaging-window policy included), make one HTTP call, ask the kind what the
    answer means.

    The window is measured from ``reply.received_at`` (the customer's message the reply
    answers, carried in the outbox entry), so no extra lookup is needed: a reply that sat out an
    outage or a dead-letter replay past the window is caught before sending.
    """

    def __init__(
        self,
        kind: ChannelKind,
        session: aiohttp.ClientSession,
        channels: ChannelLookup,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        *,
        allow_private: bool,
    ) -> None:
        self._kind = kind
        self._client = ProviderClient(session, timeout_s, allow_private=allow_private)
        self._channels = channels
        self._clock = clock

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure:
        channel = await self._channels.channel(reply.channel_id)
        if channel is None:
            return PermanentFailure("channel no longer exists")
        if channel.kind != self._kind.kind:
            return PermanentFailure(f"channel is {channel.kind}, not {self._kind.kind}")
        try:
            return self._kind.outbound(channel, reply, self._clock())
        except ValueError as exc:  # a misconfigured channel (bad id/token shape)
            return PermanentFailure(f"channel misconfigured: {exc}")

    async def send(self, call: ProviderCall) -> SendOutcome:
        return await self._client.call(self._kind, call)


class ProviderClient:
    """One provider HTTP call, answered as the kind reads it; network failures are transient.

    Shared by delivery and by the admin routes' connect/disconnect calls (``setWebhook``), so a
    provider is always called the same way.
    """

    def __init__(
        self, session: aiohttp.ClientSession, timeout_s: float = 10.0, *, allow_private: bool
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._allow_private = allow_private

    async def call(self, kind: ChannelKind, call: ProviderCall) -> SendOutcome:
        if egress.refused_target(call.url, allow_private=self._allow_private):
            return PermanentFailure(egress.BLOCKED)
        try:
            async with self._session.request(
                call.method,
                call.url,
                json=call.json,
                headers=call.headers,
                timeout=self._timeout,
                allow_redirects=False,
                max_line_size=8190,
            ) as resp:
                if 300 <= resp.status < 400:
                    return PermanentFailure(f"provider answered {resp.status}: redirect refused")
                body = await resp.content.read(MAX_ANSWER_BYTES)
                return kind.interpret(resp.status, body, resp.headers)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, egress.BlockedAddress):
                return PermanentFailure(egress.BLOCKED)
            return RetryLater(f"network: {type(exc).__name__}")
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


def send_limits(settings: Settings) -> SendLimits:
    """The platform send rules' numbers, as the operator configured them."""
    return SendLimits(
        telegram_per_chat=settings.telegram_per_chat_per_s,
        telegram_per_bot=settings.telegram_global_per_s,
        whatsapp_per_number=settings.whatsapp_per_number_per_s,
        whatsapp_pair_per_s=settings.whatsapp_pair_per_s,
        whatsapp_pair_burst=settings.whatsapp_pair_burst,
        meta_per_page=settings.meta_per_page_per_s,
    )


def provider_defaults(settings: Settings) -> ProviderDefaults:
    return ProviderDefaults(
        telegram_api_base=settings.telegram_api_base,
        graph_api_base=settings.graph_api_base,
        graph_api_version=settings.graph_api_version,
    )
