"""One conversation turn: the customer's pending messages in, one reply and a new state out.

Pure domain apart from the retrieval port: the host actor supplies the messages (coalesced:
everything that arrived while the previous turn ran), the checkpointed state and the merchant
profile; this module decides what the bot says. Idempotency lives here too: ``handled`` keeps
the ids of recent messages, so a replay after a crash is recognised and not answered twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.dialogue import intents, replies
from engine.messages import InboundMessage, OutboundReply, ProductCard
from engine.retrieval import RetrievalResult
from engine.text import Language, detect_language, extract_price_limit

HANDLED_KEEP = 256
HISTORY_KEEP = 20


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
    max_products: int = 3


@dataclass(slots=True)
class ConversationState:
    merchant_id: str
    channel_id: str
    customer_id: str
    language: str = ""
    turns: int = 0
    handoff: bool = False
    handled: list[str] = field(default_factory=list)
    last_products: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    updated_at: float = 0.0

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
            "handled": list(self.handled),
            "last_products": list(self.last_products),
            "history": list(self.history),
            "updated_at": self.updated_at,
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
            handled=[str(x) for x in data.get("handled") or []],
            last_products=list(data.get("last_products") or []),
            history=list(data.get("history") or []),
            updated_at=float(data.get("updated_at") or 0.0),
        )

    @classmethod
    def new(cls, message: InboundMessage) -> ConversationState:
        return cls(message.merchant_id, message.channel_id, message.customer_id)


@dataclass(frozen=True, slots=True)
class TurnResult:
    state: ConversationState
    reply: OutboundReply | None
    inference_s: float = 0.0


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
    ) -> RetrievalResult: ...


class TurnService:
    def __init__(self, retriever: RetrievalPort, thresholds: Thresholds | None = None) -> None:
        self._retriever = retriever
        self._t = thresholds or Thresholds()

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
        text = "\n".join(m.text for m in fresh).strip()
        language = (
            detect_language(text)
            if text
            else as_language(state.language or merchant.default_language)
        )
        intent = intents.classify(text)
        reply_text, products, handoff, intent_name, inference = await self._decide(
            merchant, text, language, intent
        )
        return self._finish(
            state, fresh, reply_text, products, handoff, intent_name, language, now, inference
        )

    def fallback_turn(
        self, state: ConversationState, messages: list[InboundMessage], now: float
    ) -> TurnResult:
        """Used when the pipeline keeps failing: an honest apology and a human, never silence."""
        fresh = [m for m in messages if not state.has_handled(m.message_id)]
        if not fresh:
            return TurnResult(state, None)
        language = detect_language(" ".join(m.text for m in fresh))
        return self._finish(
            state, fresh, replies.technical_fallback(language), [], True, "fallback", language, now
        )

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

    async def _decide(
        self, merchant: MerchantProfile, text: str, language: Language, intent: intents.Intent
    ) -> tuple[str, list[ProductCard], bool, str, float]:
        name = intent.name
        if name == intents.HANDOFF:
            return replies.handoff(language), [], True, name, 0.0
        if name == intents.GREETING:
            return replies.greeting(language, merchant.name), [], False, name, 0.0
        if name == intents.THANKS:
            return replies.thanks(language), [], False, name, 0.0
        if name == intents.OUT_OF_SCOPE:
            return replies.out_of_scope(language, merchant.name), [], False, name, 0.0
        result = await self._retriever.retrieve(
            merchant.merchant_id, text, max_price=extract_price_limit(text)
        )
        return self._answer(text, language, intent, result)

    def _answer(
        self, text: str, language: Language, intent: intents.Intent, result: RetrievalResult
    ) -> tuple[str, list[ProductCard], bool, str, float]:
        t = self._t
        policy_first = intent.name == intents.POLICY_QUESTION
        knowledge_ok = result.best_knowledge >= t.knowledge
        product_ok = result.best_product >= t.product
        if knowledge_ok and (policy_first or result.best_knowledge >= result.best_product):
            best = result.knowledge[0]
            # Several documents may say the same thing in two languages: quote the one in the
            # customer's language when it scores about as well as the best.
            for hit in result.knowledge:
                if hit.language == language and hit.score >= best.score - 0.05:
                    best = hit
                    break
            return (
                replies.policy_answer(language, text, best.title, best.text),
                [],
                False,
                intents.POLICY_QUESTION,
                result.inference_s,
            )
        if product_ok and not policy_first:
            top = result.best_product
            # Keep products close to the best one: a weak tail confuses more than it helps.
            cards = [h.card for h in result.products if h.score >= max(t.product, top * 0.8)]
            return (
                replies.products_found(language),
                cards[: t.max_products],
                False,
                intents.PRODUCT_SEARCH,
                result.inference_s,
            )
        return replies.no_match(language), [], False, intent.name, result.inference_s
