"""A conversation as typed state: what the checkpoint holds between turns, and a turn's result.

The state is checkpointed after every turn (with the reply, atomically) and restored on
activation, so it must round-trip through a dict unchanged; old checkpoints load with empty
values for fields added later. The turn itself is ``engine.domain.dialogue.turns``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.domain.messages import InboundMessage, OutboundReply
from engine.domain.text import Language

log = logging.getLogger(__name__)

HANDLED_KEEP = 256
# Agent takeover travels through the conversation's own inbox as a control message (trace key
# below, value "pause" or "resume"), so it is ordered with the customer's messages. A staff cart
# edit is the control "cart" with the new lines as the message text (engine.domain.carts).
CONTROL = "kaleem.control"
HISTORY_KEEP = 20
ORDERS_KEEP = 20
CART_MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    merchant_id: str
    name: str
    default_language: str = "ar"
    # How generated phrasing should sound ("friendly", "formal"...); "" = the default voice.
    tone: str = ""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Scores are the reranker's fused scores in [0, 1] (0.7 dense + 0.3 lexical).

    Calibrated on the demo store: unrelated questions fuse to 0.53-0.59 (e5 cosines of unrelated
    texts sit near 0.78), real matches to 0.65 and above.
    """

    product: float = 0.62
    knowledge: float = 0.62
    # Between ``clarify`` and ``product``: close but unsure -> a short clarifying question.
    clarify: float = 0.595
    max_products: int = 3


@dataclass(slots=True)
class ConversationState:
    merchant_id: str
    channel_id: str
    customer_id: str
    language: str = ""
    turns: int = 0
    handoff: bool = False
    paused: bool = False  # an agent took over: record, never answer
    handled: list[str] = field(default_factory=list)
    last_products: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    updated_at: float = 0.0
    # Context across turns (all optional in old checkpoints): the product the customer is
    # talking about, the question that found it, the cart, an in-progress checkout (stage +
    # collected fields) and the orders placed from this conversation.
    focus: str = ""
    last_query: str = ""
    cart: list[dict[str, Any]] = field(default_factory=list)
    checkout: dict[str, str] = field(default_factory=dict)
    orders: list[str] = field(default_factory=list)

    def has_handled(self, message_id: str) -> bool:
        return message_id in self.handled

    def to_dict(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "channel_id": self.channel_id,
            "customer_id": self.customer_id,
            "language": self.language,
            "turns": self.turns,
            "handoff": self.handoff,
            "paused": self.paused,
            "handled": list(self.handled),
            "last_products": list(self.last_products),
            "history": list(self.history),
            "updated_at": self.updated_at,
            "focus": self.focus,
            "last_query": self.last_query,
            "cart": list(self.cart),
            "checkout": dict(self.checkout),
            "orders": list(self.orders),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        return cls(
            merchant_id=str(data["merchant_id"]),
            channel_id=str(data["channel_id"]),
            customer_id=str(data["customer_id"]),
            language=str(data.get("language") or ""),
            turns=int(data.get("turns") or 0),
            handoff=bool(data.get("handoff")),
            paused=bool(data.get("paused")),
            handled=[str(x) for x in data.get("handled") or []],
            last_products=list(data.get("last_products") or []),
            history=list(data.get("history") or []),
            updated_at=float(data.get("updated_at") or 0.0),
            focus=str(data.get("focus") or ""),
            last_query=str(data.get("last_query") or ""),
            cart=[dict(x) for x in data.get("cart") or [] if isinstance(x, dict)],
            checkout={str(k): str(v) for k, v in (data.get("checkout") or {}).items()},
            orders=[str(x) for x in data.get("orders") or []][-ORDERS_KEEP:],
        )

    @classmethod
    def new(cls, message: InboundMessage) -> ConversationState:
        return cls(message.merchant_id, message.channel_id, message.customer_id)


@dataclass(frozen=True, slots=True)
class TurnResult:
    state: ConversationState
    reply: OutboundReply | None
    inference_s: float = 0.0
    # What the customer said this turn (answered or not: during a takeover the bot is silent
    # but the record must still show it), and whether staff edited the cart.
    heard: tuple[InboundMessage, ...] = ()
    cart_edited: bool = False


def as_language(value: str) -> Language:
    return "ar" if value == "ar" else "en"


def conversation_id(conversation_key: str) -> str:
    """Opaque, URL-safe id of a conversation (keys hold channel and customer ids)."""
    return "cv_" + hashlib.blake2b(conversation_key.encode(), digest_size=10).hexdigest()


def outbox_id_for(message_ids: list[str], conversation_key: str) -> str:
    """Deterministic: the same messages always give the same reply id."""
    digest = hashlib.blake2b(
        (conversation_key + "|" + "|".join(message_ids)).encode(), digest_size=12
    ).hexdigest()
    return f"r-{digest}"
