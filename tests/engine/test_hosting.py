"""The virtual-actor host, with in-memory fakes for the inbox, checkpoints and retrieval."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from engine.adapters.redis.queues import StreamEntry
from engine.domain.conversation import MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard
from engine.services.hosting import ConversationHostCore
from engine.services.retrieval import ProductHit, RetrievalResult


class FakeInbox:
    def __init__(self) -> None:
        self.acked: list[str] = []

    async def setup(self) -> None:
        return None

    async def read(self, count: int = 64, block_ms: int = 1000) -> list[StreamEntry]:
        await asyncio.sleep(3600)
        return []

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        self.acked += [e.entry_id for e in entries]


class FakeCheckpoints:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.replies: list[OutboundReply] = []
        self.fail_commits = 0

    async def load_state(self, merchant_id: str, conversation_key: str) -> dict[str, Any] | None:
        return self.states.get(conversation_key)

    async def commit(
        self, merchant_id: str, key: str, state: dict[str, Any], reply: OutboundReply | None
    ) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise ConnectionError("redis down")
        self.states[key] = state
        if reply is not None:
            self.replies.append(reply)


class GatedRetriever:
    """Blocks every retrieval until released, and records the queries in order."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.active = 0
        self.max_active = 0
        self.fail = 0

    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.queries.append(query)
            await self.gate.wait()
            if self.fail:
                self.fail -= 1
                raise RuntimeError("serve unavailable")
            card = ProductCard("SKU-1", "Red shoes", 100.0, "SAR", None)
            return RetrievalResult([ProductHit(card, 0.9, 0.9, True, None)], [])
        finally:
            self.active -= 1


class Merchants:
    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        return MerchantProfile(merchant_id, "Shop", "en") if merchant_id == "m1" else None


def msg(n: int, text: str, customer: str = "c1", merchant: str = "m1") -> StreamEntry:
    m = InboundMessage(merchant, "ch1", "telegram", customer, f"u{n}", text, 1000.0 + n)
    return StreamEntry("inbox", f"{n}-0", m.to_dict())


def make_core(
    retriever: GatedRetriever, clock: list[float] | None = None
) -> tuple[ConversationHostCore, FakeInbox, FakeCheckpoints]:
    inbox, checkpoints = FakeInbox(), FakeCheckpoints()
    now = clock if clock is not None else [0.0]
    core = ConversationHostCore(
        inbox,
        checkpoints,
        TurnService(retriever),
        Merchants(),
        idle_passivate_s=60,
        clock=lambda: now[0],
    )
    return core, inbox, checkpoints


async def settle(core: ConversationHostCore) -> None:
    for _ in range(200):
        if core.stats()["pending"] == 0 and core.stats()["busy"] == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"host did not settle: {core.stats()}")


async def test_messages_during_a_turn_are_coalesced_into_the_next() -> None:
    retriever = GatedRetriever()
    core, inbox, cps = make_core(retriever)
    retriever.gate.clear()
    await core.dispatch([msg(1, "red shoes")])
    await asyncio.sleep(0.01)
    await core.dispatch([msg(2, "size 42"), msg(3, "in leather")])
    retriever.gate.set()
    await settle(core)
    assert retriever.queries == ["red shoes", "size 42\nin leather"]
    assert [r.in_reply_to for r in cps.replies] == [("u1",), ("u2", "u3")]
    assert retriever.max_active == 1  # turns of one conversation never overlap
    assert sorted(inbox.acked) == ["1-0", "2-0", "3-0"]


async def test_different_conversations_run_concurrently() -> None:
    retriever = GatedRetriever()
    core, _, cps = make_core(retriever)
    retriever.gate.clear()
    await core.dispatch([msg(1, "shoes", "a"), msg(2, "bags", "b")])
    await asyncio.sleep(0.01)
    assert retriever.max_active == 2
    retriever.gate.set()
    await settle(core)
    assert len(cps.replies) == 2


async def test_replayed_messages_are_not_answered_twice() -> None:
    retriever = GatedRetriever()
    core, inbox, cps = make_core(retriever)
    await core.dispatch([msg(1, "red shoes")])
    await settle(core)
    # The same entry again (a host restart re-reading its pending list) → acked, no reply.
    await core.dispatch([msg(1, "red shoes")])
    await settle(core)
    assert len(cps.replies) == 1
    assert inbox.acked.count("1-0") == 2


async def test_state_survives_passivation_and_is_restored() -> None:
    clock = [0.0]
    retriever = GatedRetriever()
    core, _, cps = make_core(retriever, clock)
    await core.dispatch([msg(1, "red shoes")])
    await settle(core)
    clock[0] = 120.0
    assert core.passivate_idle() == 1
    assert core.stats()["active"] == 0
    await core.dispatch([msg(2, "another")])
    await settle(core)
    state = cps.states["m1:ch1:c1"]
    assert state["turns"] == 2
    assert state["handled"] == ["u1", "u2"]


async def test_failing_pipeline_still_gives_one_honest_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("engine.services.hosting.TURN_ATTEMPTS", 2)
    retriever = GatedRetriever()
    retriever.fail = 10
    core, inbox, cps = make_core(retriever)
    await core.dispatch([msg(1, "red shoes")])
    for _ in range(300):
        if cps.replies:
            break
        await asyncio.sleep(0.01)
    [reply] = cps.replies
    assert reply.handoff is True
    assert reply.intent == "fallback"
    await settle(core)
    assert inbox.acked == ["1-0"]


async def test_failed_commit_is_retried_without_losing_or_doubling() -> None:
    retriever = GatedRetriever()
    core, inbox, cps = make_core(retriever)
    cps.fail_commits = 1
    await core.dispatch([msg(1, "red shoes")])
    for _ in range(300):
        if cps.replies:
            break
        await asyncio.sleep(0.01)
    await settle(core)
    assert len(cps.replies) == 1
    assert cps.states["m1:ch1:c1"]["turns"] == 1
    assert inbox.acked == ["1-0"]


async def test_unknown_merchant_is_dropped_and_acked() -> None:
    retriever = GatedRetriever()
    core, inbox, cps = make_core(retriever)
    await core.dispatch([msg(1, "hello", merchant="gone")])
    await settle(core)
    assert cps.replies == []
    assert inbox.acked == ["1-0"]
