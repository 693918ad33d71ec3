"""What every channel speaks: one :class:`ChannelKind` per platform, split in two halves.

* the **input half** turns a provider's webhook into normalised messages: ``verify`` the raw
  body (before any parsing), ``parse`` it into :class:`Inbound`, ``answer`` the provider, and
  the optional subscription ``handshake`` (Meta's ``hub.challenge``);
* the **output half** turns an ``OutboundReply`` into provider calls: ``outbound`` (including the
  platform's messaging-window policy), ``interpret`` the provider's answer into a
  :data:`SendOutcome`, the platform's ``send_rules`` (rate limits) and the calls made when a
  channel is connected or disconnected (Telegram's ``setWebhook``/``deleteWebhook``).

Everything here is pure: no I/O, no engine services, no Ray. The engine's generic pieces (the
webhook route, the delivery worker, the provider HTTP client) ask the kind what to do;
``connectors/registry.py`` is the only list of kinds. A new channel is one module with one
``ChannelKind`` subclass, added to that list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.domain.channels import Channel
from engine.domain.messages import InboundMessage, OutboundReply


class MalformedPayload(ValueError):
    """The webhook body is not what the platform sends; answered with a 400."""


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One HTTP call to a provider, fully built (URL includes any token in the path)."""

    method: str
    url: str = field(repr=False)  # holds the bot token for Telegram: never printed
    json: dict[str, Any] = field(repr=False)
    # Used for rate limiting: the provider's per-recipient key (Telegram chat id, WA phone).
    recipient: str = ""
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # bearer tokens


@dataclass(frozen=True, slots=True)
class Delivered:
    provider_message_id: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    """A transient failure: try again, not before ``after_s`` seconds when the provider said so."""

    reason: str
    after_s: float | None = None


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """Retrying cannot help (blocked, invalid token, bad request): goes to dead letters."""

    reason: str
    unreachable: bool = False


SendOutcome = Delivered | RetryLater | PermanentFailure


@dataclass(frozen=True, slots=True)
class Event:
    """Something to record on a message we already know by its provider id, not to answer.

    ``kind`` is ``status`` (sent/delivered/read/failed), ``reaction`` or ``echo``.
    """

    kind: str
    provider_message_id: str
    customer_id: str
    value: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Inbound:
    """One webhook, parsed: messages to answer, events to record, ids to remember as seen
    (updates we will not answer, so that their redelivery is recognised too)."""

    messages: list[InboundMessage] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    ignored: int = 0
    seen: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What the provider gets back once every message is durable."""

    json: dict[str, Any] | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class SendRule:
    """A platform send limit: ``rate_per_s`` sustained, ``burst`` calls back to back, per
    channel (bot, number, page) or per recipient (chat, user pair)."""

    scope: str  # "channel" | "recipient"
    rate_per_s: float
    burst: float = 1.0


@dataclass(frozen=True, slots=True)
class SendLimits:
    """The operator's send-rate settings (``engine.config.Settings``), as plain numbers."""

    telegram_per_chat: float = 1.0
    telegram_per_bot: float = 30.0
    whatsapp_per_number: float = 80.0
    whatsapp_pair_per_s: float = 1 / 6
    whatsapp_pair_burst: float = 10.0
    meta_per_page: float = 300.0


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    """Where a kind's production API lives unless the merchant names another ``api_base``."""

    telegram_api_base: str = "https://api.telegram.org"
    graph_api_base: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"


@dataclass(frozen=True, slots=True)
class ChannelDraft:
    """A channel to store, from a validated connect request: secrets are encrypted at rest."""

    api_base: str
    secrets: dict[str, str]
    config: dict[str, str] = field(default_factory=dict)


class ConnectIn(BaseModel):
    """Fields every connect request shares; each kind adds its own (a ``kind`` literal first)."""

    model_config = ConfigDict(extra="forbid")

    api_base: str | None = Field(default=None, max_length=512)

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("an http(s) URL")
        return value.rstrip("/") if value else value


SECRET_TOKEN: Final = r"^[A-Za-z0-9_-]{1,256}$"
DIGITS: Final = r"^[0-9]{1,32}$"
_SECRET_TOKEN_RE: Final = re.compile(SECRET_TOKEN)


class ChannelKind:
    """One platform. Subclasses set the class attributes and override what they support;
    the defaults describe a kind that has no webhook and no provider (a local channel)."""

    kind: ClassVar[str]
    # Replies go to the gateways' sockets and waiters (webchat, playground), not to a provider.
    local: ClassVar[bool] = False
    # The body of ``POST /api/v1/channels`` for this kind; None: built in, never connected.
    connect: ClassVar[type[ConnectIn] | None] = None
    # For a built-in kind: the channel id every merchant has (no record, no secrets).
    builtin_channel_id: ClassVar[str | None] = None
    # The span name of its webhook (traces group the Meta products under one name).
    webhook_span: ClassVar[str] = ""
    # The platform's own API hosts: the only ones a merchant's ``api_base`` may name.
    api_hosts: ClassVar[tuple[str, ...]] = ()

    def builtin_message(
        self, merchant_id: str, customer_id: str, message_id: str, text: str, at: float
    ) -> InboundMessage:
        """A customer's message on the merchant's built-in channel of this kind."""
        assert self.builtin_channel_id is not None, f"{self.kind} has no built-in channel"
        channel = self.builtin_channel_id
        return InboundMessage(merchant_id, channel, self.kind, customer_id, message_id, text, at)

    # -- connecting ---------------------------------------------------------------------------
    def draft(self, body: ConnectIn, defaults: ProviderDefaults) -> ChannelDraft:
        raise NotImplementedError(f"{self.kind} channels are not connected through the API")

    def on_connect(self, channel: Channel, webhook_url: str) -> ProviderCall | None:
        """A provider call that registers the webhook, when the platform has one."""
        return None

    def on_disconnect(self, channel: Channel) -> ProviderCall | None:
        return None

    # -- input half ---------------------------------------------------------------------------
    def verify(self, channel: Channel, headers: Mapping[str, str], body: bytes) -> bool:
        """The raw body's signature or secret, checked in constant time before parsing."""
        return False

    def parse(self, channel: Channel, body: bytes, received_at: float) -> Inbound:
        raise MalformedPayload(f"{self.kind} has no webhook")

    def answer(self, inbound: Inbound, accepted: frozenset[str]) -> WebhookAnswer:
        """``accepted``: ids of the messages that were new (not redeliveries)."""
        return WebhookAnswer(json={"ok": True})

    def handshake(self, channel: Channel, query: Mapping[str, str]) -> str | None:
        """The subscription check a platform makes with GET (None: refused or not supported)."""
        return None

    # -- output half --------------------------------------------------------------------------
    def outbound(
        self, channel: Channel, reply: OutboundReply, now: float
    ) -> list[ProviderCall] | PermanentFailure:
        raise NotImplementedError(f"{self.kind} replies are not sent to a provider")

    def interpret(self, status: int, body: bytes, headers: Mapping[str, str]) -> SendOutcome:
        raise NotImplementedError(f"{self.kind} replies are not sent to a provider")

    def send_rules(self, limits: SendLimits) -> tuple[SendRule, ...]:
        return ()


def valid_secret_token(value: str) -> bool:
    return bool(_SECRET_TOKEN_RE.match(value))
