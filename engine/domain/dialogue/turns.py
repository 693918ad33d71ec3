"""One conversation turn: the customer's pending messages in, one reply and a new state out.

Pure apart from its ports (retrieval, commerce, knowledge gaps): the host supplies the messages
(coalesced: everything that arrived while the previous turn ran), the checkpointed state and
the merchant profile; this decides what the bot says. Idempotency lives here too: ``handled``
keeps the ids of recent messages, so a replay after a crash is recognised and not answered twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Final, Protocol

from engine.domain.carts import CART_CONTROL, decode_control
from engine.domain.conversation import (
    CONTROL,
    HANDLED_KEEP,
    HISTORY_KEEP,
    ConversationState,
    MerchantProfile,
    Thresholds,
    TurnResult,
    as_language,
    outbox_id_for,
)
from engine.domain.dialogue import intents, replies
from engine.domain.dialogue.flow import CommercePort, DialogueFlow, PaymentLinksPort
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard
from engine.domain.retrieval import RetrievalPort
from engine.domain.text import Language, detect_language

log = logging.getLogger(__name__)

# The most customer text one turn reads: every rule (intents, constraints, prices) runs on it,
# so it is cut before any of them. Messages may be 4,096 characters (kept whole in the history);
# a question, an address or a checkout answer fits in far less, while the rules on 4,096 hostile
# characters cost 10-50 ms of the host's loop per turn against 0.05 ms for a question (measured
# with intents.classify on bench/abuse.py's texts): a flood of such frames bought a large share
# of the box for one store.
MAX_TURN_TEXT = 1024


class GapsPort(Protocol):
    async def record(
        self, merchant_id: str, question: str, *, intent: str, language: str, best_score: float
    ) -> None: ...


class PhrasingPort(Protocol):
    """Rewords an extractive reply from its facts, or returns it unchanged (never raises for a
    model's failure: ``engine.services.phrasing.Phraser``)."""

    async def phrase(
        self, merchant: MerchantProfile, language: str, extractive: str, facts: Sequence[str]
    ) -> str: ...


# Replies a model may reword: answers built from retrieved records. Carts, checkout, orders and
# handoffs carry state the customer acts on, and stay word for word.
PHRASED: Final = frozenset({intents.POLICY_QUESTION, intents.PRODUCT_SEARCH})


def reply_facts(text: str, products: Sequence[ProductCard]) -> list[str]:
    """What a phrasing may draw on: the extractive reply (quoted policy sentences included) and
    the cards shown with it."""
    facts = [text]
    for p in products:
        amount = "" if p.price is None else f"{p.price:.2f}".rstrip("0").rstrip(".")
        price = f" {amount} {p.currency or ''}".rstrip() if amount else ""
        facts.append(f"{p.title} ({p.sku}){price}")
    return facts


class TurnService:
    def __init__(
        self,
        retriever: RetrievalPort,
        thresholds: Thresholds | None = None,
        *,
        commerce: CommercePort | None = None,
        gaps: GapsPort | None = None,
        phraser: PhrasingPort | None = None,
        payments: PaymentLinksPort | None = None,
    ) -> None:
        self._retriever = retriever
        self._t = thresholds or Thresholds()
        self._commerce = commerce
        self._gaps = gaps
        self._phraser = phraser
        self._flow = DialogueFlow(retriever, self._t, commerce, payments)

    async def run_turn(
        self,
        state: ConversationState,
        messages: list[InboundMessage],
        merchant: MerchantProfile,
        now: float,
    ) -> TurnResult:
        fresh, idle = self._unanswered(state, messages, now)
        if not fresh:
            return idle
        result = await self._answer(state, fresh, merchant, now)
        return replace(result, heard=idle.heard, cart_edited=idle.cart_edited)

    def _unanswered(
        self, state: ConversationState, messages: list[InboundMessage], now: float
    ) -> tuple[list[InboundMessage], TurnResult]:
        """The messages the bot still has to answer, and the turn's result if there are none
        (already handled, or an agent has the conversation)."""
        fresh = [m for m in messages if not state.has_handled(m.message_id)]
        if not fresh:
            return [], TurnResult(state, None)
        fresh, heard, cart_edited = self._unless_agent_has_it(state, fresh, now)
        return fresh, TurnResult(state, None, heard=heard, cart_edited=cart_edited)

    async def _answer(
        self,
        state: ConversationState,
        fresh: list[InboundMessage],
        merchant: MerchantProfile,
        now: float,
    ) -> TurnResult:
        text = "\n".join(m.text for m in fresh).strip()[:MAX_TURN_TEXT]
        language = (
            detect_language(text)
            if text
            else as_language(state.language or merchant.default_language)
        )
        intent = intents.classify(text)
        key = fresh[0].conversation_key
        turn_id = outbox_id_for([m.message_id for m in fresh], key)
        decision = await self._flow.decide(state, merchant, text, language, intent, key, turn_id)
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
        reply_text = decision.text
        if self._phraser is not None and decision.intent in PHRASED and not decision.handoff:
            try:
                facts = reply_facts(decision.text, decision.products)
                reply_text = await self._phraser.phrase(merchant, language, decision.text, facts)
            except Exception:  # phrasing is optional: the extractive reply is always ready
                log.exception("phrasing failed")
                reply_text = decision.text
        result = self._finish(
            state,
            fresh,
            reply_text,
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
        fresh, idle = self._unanswered(state, messages, now)
        if not fresh:
            return idle
        heard, cart_edited = idle.heard, idle.cart_edited
        language = detect_language(" ".join(m.text for m in fresh))
        result = self._finish(
            state,
            fresh,
            replies.technical_fallback(language),
            [],
            True,
            intents.FALLBACK,
            language,
            now,
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
