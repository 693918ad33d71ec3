"""Normalized message types shared by connectors, the gateway, the actors and the domain.

Platform payloads never leave ``connectors/``: everything past parsing speaks these types.
They are plain dataclasses with explicit ``to_dict``/``from_dict`` so they cross Redis
streams and Ray calls as small JSON-able dicts, not pickled objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ChannelKind = str  # one of connectors.registry.KINDS


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One customer message, after the connector parsed and verified it.

    ``message_id`` is the provider's id (Telegram ``update_id``, a WhatsApp ``wamid``, a
    webchat client id): it is the dedupe key, so a redelivery of the same provider message
    always maps to the same value.
    """

    merchant_id: str
    channel_id: str
    channel_kind: ChannelKind
    customer_id: str
    message_id: str
    text: str
    received_at: float
    customer_name: str | None = None
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.merchant_id, self.channel_id, self.customer_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboundMessage:
        return cls(
            **_strings(data, *_ADDRESS, "message_id", "text"),
            received_at=float(data["received_at"]),
            customer_name=data.get("customer_name"),
            trace=dict(data.get("trace") or {}),
        )


@dataclass(frozen=True, slots=True)
class ProductCard:
    """What a reply shows of a product: never more than the customer needs."""

    sku: str
    title: str
    price: float | None
    currency: str | None
    url: str | None
    image_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductCard:
        price = data.get("price")
        return cls(
            sku=str(data["sku"]),
            title=str(data.get("title") or ""),
            price=None if price is None else float(price),
            currency=data.get("currency"),
            url=data.get("url"),
            image_url=data.get("image_url"),
        )


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """A reply the bot decided on, written to the durable outbox before any send.

    ``outbox_id`` is derived from the inbound message ids it answers, so re-running the same
    turn after a crash produces the same id and the outbox drops the repeat.
    """

    outbox_id: str
    merchant_id: str
    channel_id: str
    channel_kind: ChannelKind
    customer_id: str
    text: str
    intent: str
    handoff: bool
    in_reply_to: tuple[str, ...]
    received_at: float
    language: str = "en"
    products: tuple[ProductCard, ...] = ()
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def conversation_key(self) -> str:
        return conversation_key(self.merchant_id, self.channel_id, self.customer_id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["in_reply_to"] = list(self.in_reply_to)
        data["products"] = [p.to_dict() for p in self.products]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutboundReply:
        return cls(
            **_strings(data, "outbox_id", *_ADDRESS, "text", "intent"),
            handoff=bool(data["handoff"]),
            in_reply_to=tuple(str(x) for x in data.get("in_reply_to") or ()),
            received_at=float(data["received_at"]),
            language=str(data.get("language") or "en"),
            products=tuple(ProductCard.from_dict(p) for p in data.get("products") or ()),
            trace=dict(data.get("trace") or {}),
        )


# Who a message is from or to: the fields every message names.
_ADDRESS = ("merchant_id", "channel_id", "channel_kind", "customer_id")


def _strings(data: dict[str, Any], *names: str) -> dict[str, str]:
    """Required text fields of a stored message (a missing one is a KeyError: a bug)."""
    return {name: str(data[name]) for name in names}


def conversation_key(merchant_id: str, channel_id: str, customer_id: str) -> str:
    """The identity of one logical conversation actor."""
    return f"{merchant_id}:{channel_id}:{customer_id}"
