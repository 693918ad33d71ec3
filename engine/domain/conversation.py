"""One conversation turn: the customer's pending messages in, one reply and a new state out.

Pure domain apart from the retrieval port: the host actor supplies the messages (coalesced:
everything that arrived while the previous turn ran), the checkpointed state and the merchant
profile; this module decides what the bot says. Idempotency lives here too: ``handled`` keeps
the ids of recent messages, so a replay after a crash is recognised and not answered twice.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from engine.domain.carts import CART_CONTROL, decode_control
from engine.domain.dialogue import intents, replies
from engine.domain.dialogue.flow import CommercePort, DialogueFlow
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard
from engine.domain.text import Language, detect_language
from engine.services.retrieval import Filters, RetrievalResult

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


def outbox_id_for(message_ids: list[str], conversation_key: str) -> str:
    """Deterministic: the same messages always give the same reply id."""
    digest = hashlib.blake2b(
        (conversation_key + "|" + "|".join(message_ids)).encode(), digest_size=12
    ).hexdigest()
    return f"r-{digest}"


class RetrievalPort(Protocol):
    async def retrieve(
        self,
        merchant_id: str,
        query: str,
        *,
        product_limit: int = 10,
        knowledge_limit: int = 5,
        max_price: float | None = None,
        filters: Filters | None = None,
    ) -> RetrievalResult: ...


class GapsPort(Protocol):
    async def record(
        self, merchant_id: str, question: str, *, intent: str, language: str, best_score: float
    ) -> None: ...


class TurnService:
    def __init__(
        self,
        retriever: RetrievalPort,
        thresholds: Thresholds | None = None,
        *,
        commerce: CommercePort | None = None,
        gaps: GapsPort | None = None,
    ) -> None:
        self._retriever = retriever
        self._t = thresholds or Thresholds()
        self._commerce = commerce
        self._gaps = gaps
        self._flow = DialogueFlow(retriever, self._t, commerce)

    async def run_turn(
        self,
        state: ConversationState,
        messages: list[InboundMessage],
        merchant: MerchantProfile,
        now: float,
    ) -> TurnResult:
        fresh = [m for m in messages if not state.has_handled(m.message_id)]
        if not fresh:
            return TurnResult(state, None)
        fresh, heard, cart_edited = self._unless_agent_has_it(state, fresh, now)
        if not fresh:
            return TurnResult(state, None, heard=heard, cart_edited=cart_edited)
        result = await self._answer(state, fresh, merchant, now)
        return replace(result, heard=heard, cart_edited=cart_edited)

    async def _answer(
        self,
        state: ConversationState,
        fresh: list[InboundMessage],
        merchant: MerchantProfile,
        now: float,
    ) -> TurnResult:
        text = "\n".join(m.text for m in fresh).strip()
        language = (
            detect_language(text)
            if text
            else as_language(state.language or merchant.default_language)
        )
        intent = intents.classify(text)
        key = fresh[0].conversation_key
        decision = await self._flow.decide(state, merchant, text, language, intent, key)
        if decision.gap_score is not None and self._gaps is not None:
            try:
                await self._gaps.record(
                    merchant.merchant_id,
                    text,
                    intent=intent.name,
                    language=language,
                    best_score=decision.gap_score,
                )
            except Exception:  # a gap log must never cost the customer a reply
                log.exception("recording a knowledge gap failed")
        result = self._finish(
            state,
            fresh,
            decision.text,
            decision.products,
            decision.handoff,
            decision.intent,
            language,
            now,
            decision.inference_s,
        )
        if decision.shown is not None:
            result.state.last_products = decision.shown
        return result

    @staticmethod
    def _unless_agent_has_it(
        state: ConversationState, fresh: list[InboundMessage], now: float
    ) -> tuple[list[InboundMessage], tuple[InboundMessage, ...], bool]:
        """Apply controls in arrival order; return (what the bot answers, what the customer
        said, whether staff edited the cart).

        Messages that arrived while an agent had the conversation are marked handled and
        never answered, even when they are coalesced with a later hand-back. A staff cart edit
        replaces the cart before the bot answers anything coalesced with it, so the bot's reply
        always describes the cart the customer really has.
        """
        answer: list[InboundMessage] = []
        heard: list[InboundMessage] = []
        cart_edited = False
        for m in fresh:
            control = m.trace.get(CONTROL)
            if control == CART_CONTROL:
                lines = decode_control(m.text)
                if lines is not None:
                    state.cart = lines
                    if not lines:
                        state.checkout = {}  # nothing left to check out
                    cart_edited = True
            elif control is not None:
                state.paused = control == "pause"
            else:
                heard.append(m)
                if not state.paused:
                    answer.append(m)
        if len(answer) < len(fresh):
            kept = {m.message_id for m in answer}
            silent = [m.message_id for m in fresh if m.message_id not in kept]
            state.handled = (state.handled + silent)[-HANDLED_KEEP:]
            state.updated_at = now
        return answer, tuple(heard), cart_edited

    def fallback_turn(
        self, state: ConversationState, messages: list[InboundMessage], now: float
    ) -> TurnResult:
        """Used when the pipeline keeps failing: an honest apology and a human, never silence."""
        fresh = [m for m in messages if not state.has_handled(m.message_id)]
        if not fresh:
            return TurnResult(state, None)
        fresh, heard, cart_edited = self._unless_agent_has_it(state, fresh, now)
        if not fresh:
            return TurnResult(state, None, heard=heard, cart_edited=cart_edited)
        language = detect_language(" ".join(m.text for m in fresh))
        result = self._finish(
            state, fresh, replies.technical_fallback(language), [], True, "fallback", language, now
        )
        return replace(result, heard=heard, cart_edited=cart_edited)

    def _finish(
        self,
        state: ConversationState,
        fresh: list[InboundMessage],
        reply_text: str,
        products: list[ProductCard],
        handoff: bool,
        intent_name: str,
        language: Language,
        now: float,
        inference: float = 0.0,
    ) -> TurnResult:
        ids = [m.message_id for m in fresh]
        first = fresh[0]
        text = "\n".join(m.text for m in fresh).strip()
        reply = OutboundReply(
            outbox_id=outbox_id_for(ids, first.conversation_key),
            merchant_id=first.merchant_id,
            channel_id=first.channel_id,
            channel_kind=first.channel_kind,
            customer_id=first.customer_id,
            text=reply_text,
            intent=intent_name,
            handoff=handoff,
            in_reply_to=tuple(ids),
            received_at=min(m.received_at for m in fresh),
            language=language,
            products=tuple(products),
            trace=dict(first.trace),
        )
        state.language = language
        state.turns += 1
        state.handoff = state.handoff or handoff
        state.handled = (state.handled + ids)[-HANDLED_KEEP:]
        if products:
            state.last_products = [p.to_dict() for p in products]
        turn = [{"role": "customer", "text": text}, {"role": "bot", "text": reply_text}]
        state.history = [*state.history, *turn][-HISTORY_KEEP:]
        state.updated_at = now
        return TurnResult(state, reply, inference)
