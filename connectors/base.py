"""What every channel connector speaks: the outcome of one provider call.

Connectors split input (verify + parse a webhook into ``InboundMessage``) from output (build a
provider call from an ``OutboundReply`` and interpret the provider's answer). The delivery
machinery (rate limits, retries, dead letters) lives in ``actors/`` and only sees these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
