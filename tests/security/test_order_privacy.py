"""A phone number typed into a chat does not open someone's order.

"Where is my order 05xxxxxxxx" used to answer with the newest order for that phone, from any
conversation (an anonymous webchat included): a stranger who knows a phone number learned the
order's number, status and total. The bot now answers for this conversation's orders, or for
an order whose number and phone are both given.
"""

from __future__ import annotations

from typing import Any

from engine.domain.conversation import ConversationState, MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage
from engine.domain.retrieval import RetrievalResult

MERCHANT = MerchantProfile("m1", "Shop", "en")
ORDER = {
    "_id": "ord_0123456789ab",
    "merchant_id": "m1",
    "status": "shipped",
    "phone": "0551234567",
    "total": 612.5,
    "currency": "SAR",
}

# A store platform's order (Salla): the customer knows the platform's number, not ours.
PLATFORM_ORDER = {
    "_id": "ord_feedfacecafe",
    "merchant_id": "m1",
    "status": "shipped",
    "platform_status": "Out for delivery",
    "platform_order_number": "55123",
    "phone": "+966551234567",
    "total": 240.0,
    "currency": "SAR",
}


class NoResults:
    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        return RetrievalResult([], [])


class Orders:
    async def create_order(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("no order is created here")

    async def get_order(self, merchant_id: str, order_id: str) -> dict[str, Any] | None:
        return dict(ORDER) if merchant_id == "m1" and order_id == ORDER["_id"] else None

    async def orders_by_platform_number(
        self, merchant_id: str, number: str
    ) -> list[dict[str, Any]]:
        return [dict(PLATFORM_ORDER)] if merchant_id == "m1" and number == "55123" else []


async def _ask(state: ConversationState, text: str) -> str:
    service = TurnService(NoResults(), commerce=Orders())  # type: ignore[arg-type]
    message = InboundMessage("m1", "webchat", "webchat", state.customer_id, text, text, 0.0)
    result = await service.run_turn(state, [message], MERCHANT, 1.0)
    assert result.reply is not None
    return result.reply.text


def _leaks(text: str) -> bool:
    return ORDER["_id"] in text or "612" in text or "shipped" in text


async def test_a_stranger_with_the_phone_learns_nothing() -> None:
    stranger = ConversationState("m1", "webchat", "stranger")
    reply = await _ask(stranger, "where is my order 0551234567")
    assert not _leaks(reply) and "order number" in reply


async def test_the_right_number_with_the_wrong_phone_learns_nothing() -> None:
    stranger = ConversationState("m1", "webchat", "stranger")
    reply = await _ask(stranger, f"order status {ORDER['_id']} 0559999999")
    assert not _leaks(reply)


async def test_number_and_phone_together_answer() -> None:
    owner = ConversationState("m1", "webchat", "owner-elsewhere")
    reply = await _ask(owner, f"where is my order {ORDER['_id']} phone 0551234567")
    assert ORDER["_id"] in reply and "shipped" in reply


async def test_the_conversation_that_placed_it_is_answered() -> None:
    buyer = ConversationState("m1", "webchat", "buyer", orders=[ORDER["_id"]])
    reply = await _ask(buyer, "where is my order?")
    assert ORDER["_id"] in reply and "shipped" in reply


async def test_a_platform_order_number_opens_only_with_its_phone() -> None:
    stranger = ConversationState("m1", "webchat", "platform-stranger")
    wrong = await _ask(stranger, "where is my order #55123 my phone 0559999999")
    assert "Out for delivery" not in wrong and "240" not in wrong
    alone = await _ask(stranger, "where is my order 55123")
    assert "Out for delivery" not in alone
    owner = ConversationState("m1", "webchat", "platform-owner")
    reply = await _ask(owner, "where is my order 55123? phone +966551234567")
    assert "55123" in reply and "Out for delivery" in reply
