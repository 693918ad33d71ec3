"""One merchant's flood does not delay another merchant's messages on the same host.

A conversation host ran up to 64 turns at once, first come first served: a merchant whose
webchat is flooded (hundreds of conversations, each one turn in flight) took every slot, and
the next merchant's customer waited for the whole flood, in the host and again at the shared
embedder. Turns now take slots round-robin per merchant with a per-merchant cap. The real
host core (``ConversationHostCore``) and turn service run here; the inbox, the checkpoints and
retrieval are in-memory fakes that let the test decide when each retrieval finishes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.adapters.redis.queues import StreamEntry
from engine.domain.conversation import MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage, OutboundReply
from engine.services.hosting import ConversationHostCore
from engine.services.retrieval import RetrievalResult
from tests.engine.test_hosting import FakeInbox


class Checkpoints:
    def __init__(self) -> None:
        self.replies: list[OutboundReply] = []

    async def load_state(self, merchant_id: str, conversation_key: str) -> dict[str, Any] | None:
        return None

    async def commit(
        self, merchant_id: str, key: str, state: dict[str, Any], reply: OutboundReply | None
    ) -> None:
        if reply is not None:
            self.replies.append(reply)


class HeldRetriever:
    """Every retrieval waits until the test lets that one go; the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self._release: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        self.started.append(query)
        event = self._release[query] = asyncio.Event()
        self.changed.set()
        await event.wait()
        return RetrievalResult([], [])

    def let_go(self, query: str) -> None:
        self._release[query].set()

    def let_all_go(self) -> None:
        for event in self._release.values():
            event.set()

    async def until(self, n: int) -> None:
        while len(self.started) < n:
            self.changed.clear()
            await self.changed.wait()


class AnyMerchant:
    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        return MerchantProfile(merchant_id, "Shop", "en")


def entry(n: int, merchant: str, customer: str, text: str) -> StreamEntry:
    m = InboundMessage(merchant, f"ch_{merchant}", "telegram", customer, f"u{n}", text, 1e3 + n)
    return StreamEntry("inbox", f"{n}-0", m.to_dict())


def host(retriever: HeldRetriever, slots: int, per_merchant: int) -> tuple[Any, Any, Any]:
    inbox, checkpoints = FakeInbox(), Checkpoints()
    core = ConversationHostCore(
        inbox,
        checkpoints,
        TurnService(retriever),
        AnyMerchant(),
        max_concurrent_turns=slots,
        max_turns_per_merchant=per_merchant,
    )
    return core, inbox, checkpoints


async def _settle(core: ConversationHostCore) -> None:
    for _ in range(500):
        if core.stats()["pending"] == 0 and core.stats()["busy"] == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"host did not settle: {core.stats()}")


async def test_another_merchants_message_runs_while_a_flood_is_held() -> None:
    retriever = HeldRetriever()
    core, inbox, checkpoints = host(retriever, slots=64, per_merchant=8)
    flood = [entry(n, "m_flood", f"f{n}", f"flood question {n}") for n in range(200)]
    await core.dispatch(flood)
    await retriever.until(8)
    await core.dispatch([entry(1000, "m_shop", "c1", "do you have red shoes?")])
    await retriever.until(9)
    # The shop's customer is being answered while 192 flood turns have not even started.
    assert retriever.started[8] == "do you have red shoes?"
    assert sum(q.startswith("flood") for q in retriever.started) == 8
    retriever.let_go("do you have red shoes?")
    for _ in range(500):
        if any(r.merchant_id == "m_shop" for r in checkpoints.replies):
            break
        await asyncio.sleep(0.01)
    assert any(r.merchant_id == "m_shop" for r in checkpoints.replies)
    assert not any(r.merchant_id == "m_flood" for r in checkpoints.replies)
    retriever.let_all_go()
    while len(retriever.started) < 201:  # the flood goes on, eight at a time
        retriever.let_all_go()
        await asyncio.sleep(0.01)
    retriever.let_all_go()
    await _settle(core)
    replied = sorted(r.customer_id for r in checkpoints.replies if r.merchant_id == "m_flood")
    assert replied == sorted(f"f{n}" for n in range(200))  # every flood message answered once
    assert len(inbox.acked) == 201


async def test_a_freed_slot_goes_to_the_waiting_merchant_first() -> None:
    retriever = HeldRetriever()
    core, _, checkpoints = host(retriever, slots=4, per_merchant=4)
    await core.dispatch([entry(n, "m_flood", f"f{n}", f"flood {n}") for n in range(50)])
    await retriever.until(4)
    await core.dispatch([entry(500, "m_shop", "c1", "shipping to Riyadh?")])
    await core.dispatch([entry(501, "m_other", "c9", "return policy?")])
    retriever.let_go("flood 0")
    await retriever.until(5)
    assert retriever.started[4] == "shipping to Riyadh?"  # not "flood 4"
    retriever.let_go("flood 1")
    await retriever.until(6)
    assert retriever.started[5] == "return policy?"
    retriever.let_go("flood 2")
    await retriever.until(7)
    assert retriever.started[6] == "flood 4"  # then the flood again, in its own order
    retriever.let_all_go()
    while len(retriever.started) < 52:
        retriever.let_all_go()
        await asyncio.sleep(0.01)
    retriever.let_all_go()
    await _settle(core)
    assert len(checkpoints.replies) == 52
