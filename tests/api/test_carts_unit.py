"""Carts, silent takeover messages and live events, without Ray: domain, host core, projector."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from engine.adapters.records import Records, conversation_id
from engine.adapters.redis.live_events import RedisLiveEvents
from engine.adapters.repositories import sqlite_repositories
from engine.adapters.secrets import SecretBox
from engine.domain.carts import CART_CONTROL, decode_control, encode_control
from engine.domain.conversation import CONTROL, ConversationState, MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage
from engine.services.hosting import CommittedTurn
from engine.services.projections import TurnProjector
from engine.services.retrieval import RetrievalResult
from tests.engine.test_hosting import GatedRetriever, make_core, msg, settle

MERCHANT = MerchantProfile("m1", "Shop", "en")
LINES = [
    {"sku": "MUG-1", "title": "Blue mug", "qty": 2, "price": 12.5, "currency": "SAR"},
    {"sku": "TEA-9", "title": "Green tea", "qty": 1, "price": 30.0, "currency": "SAR"},
]


class NoHits:
    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        return RetrievalResult([], [])


def message(
    mid: str, text: str = "hello", control: str | None = None, name: str | None = None
) -> InboundMessage:
    return InboundMessage(
        "m1",
        "ch",
        "telegram",
        "c1",
        mid,
        text,
        time.time(),
        customer_name=name,
        trace={CONTROL: control} if control else {},
    )


def cart_control(mid: str, lines: list[dict[str, Any]]) -> InboundMessage:
    return message(mid, encode_control(lines), control=CART_CONTROL)


def test_control_payload_is_bounded_and_typed() -> None:
    hostile = [{"sku": "A", "qty": 10_000, "price": "free"}, {"qty": 1}, "x"] + [
        {"sku": f"S{i}"} for i in range(50)
    ]
    lines = decode_control(encode_control(hostile))
    assert lines is not None and len(lines) == 20
    assert lines[0] == {"sku": "A", "title": "A", "qty": 99, "price": None, "currency": None}
    assert decode_control("not json") is None and decode_control('{"items": 3}') is None


async def test_staff_cart_edit_is_what_the_bot_then_shows_the_customer() -> None:
    svc = TurnService(NoHits())
    state = ConversationState("m1", "ch", "c1")
    r = await svc.run_turn(state, [cart_control("ctl-1", LINES)], MERCHANT, 1.0)
    assert r.reply is None and r.cart_edited and r.heard == ()
    assert [line["sku"] for line in r.state.cart] == ["MUG-1", "TEA-9"]
    r = await svc.run_turn(r.state, [message("1", "show my cart")], MERCHANT, 2.0)
    assert r.reply is not None and r.reply.intent == "view_cart"
    assert "Blue mug" in r.reply.text and "Green tea" in r.reply.text and "55" in r.reply.text
    # Emptying the cart also drops a checkout in progress: nothing is left to order.
    r.state.checkout = {"stage": "phone", "name": "Sara"}
    r = await svc.run_turn(r.state, [cart_control("ctl-2", [])], MERCHANT, 3.0)
    assert r.state.cart == [] and r.state.checkout == {} and r.cart_edited


async def test_messages_during_takeover_are_heard_but_not_answered() -> None:
    svc = TurnService(NoHits())
    state = ConversationState("m1", "ch", "c1")
    r = await svc.run_turn(
        state, [message("p", control="pause"), message("1", "anyone there?")], MERCHANT, 1.0
    )
    assert r.reply is None and [m.text for m in r.heard] == ["anyone there?"]
    assert r.state.has_handled("1") and r.state.updated_at == 1.0
    r = await svc.run_turn(
        r.state, [message("r", control="resume"), message("2", "hello")], MERCHANT, 2.0
    )
    assert r.reply is not None and r.reply.in_reply_to == ("2",)
    assert [m.message_id for m in r.heard] == ["2"]


class Observed:
    def __init__(self) -> None:
        self.turns: list[CommittedTurn] = []

    async def __call__(self, turn: CommittedTurn) -> None:
        self.turns.append(turn)


async def test_host_checkpoints_turns_without_a_reply_and_reports_them() -> None:
    core, inbox, checkpoints = make_core(GatedRetriever())
    seen = Observed()
    core._observer = seen
    pause = msg(1, "")
    pause.payload["trace"] = {CONTROL: "pause"}
    await core.dispatch([pause])
    await settle(core)
    key = "m1:ch1:c1"
    assert checkpoints.states[key]["paused"] is True and checkpoints.replies == []
    await core.dispatch([msg(2, "is anyone there?")])
    await settle(core)
    assert checkpoints.replies == [] and "u2" in checkpoints.states[key]["handled"]
    assert [m.text for m in seen.turns[-1].result.heard] == ["is anyone there?"]
    edit = msg(3, encode_control(LINES))
    edit.payload["trace"] = {CONTROL: CART_CONTROL}
    await core.dispatch([edit])
    await settle(core)
    assert [line["sku"] for line in checkpoints.states[key]["cart"]] == ["MUG-1", "TEA-9"]
    assert seen.turns[-1].cart_changed and inbox.acked == ["1-0", "2-0", "3-0"]


class FakeRedis:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def publish(self, channel: str, message: bytes) -> int:
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("redis down")
        self.published.append((channel, message))
        return 1


def records(data_dir: Path) -> Records:
    repos = sqlite_repositories(data_dir / "records.sqlite3")
    return Records(repos, SecretBox(Fernet.generate_key().decode()))


def committed(
    heard: list[InboundMessage], cart: list[dict[str, Any]], before: list[dict[str, Any]]
) -> CommittedTurn:
    from engine.domain.conversation import TurnResult

    state = ConversationState("m1", "ch", "c1", cart=cart)
    return CommittedTurn(heard[0], TurnResult(state, None, heard=tuple(heard)), before, 0.01, 5.0)


async def test_projector_records_silent_messages_and_keeps_the_cart_list(tmp_path: Path) -> None:
    recs = records(tmp_path)
    projector = TurnProjector(recs, RedisLiveEvents(FakeRedis()))
    silent = message("7", "anyone there?", name="Sara")
    events = await projector.project(committed([silent], LINES, []))
    key = silent.conversation_key
    stored = (await recs.repos.messages.page("m1", key, limit=50, after=None)).items
    assert [(m["text"], m["answered"]) for m in stored] == [("anyone there?", False)]
    assert [kind for kind, _ in events] == ["message.created", "cart.updated"]
    cart = events[1][1]
    assert cart["total"] == 55.0 and cart["item_count"] == 3 and cart["customer_name"] == "Sara"
    listed = await recs.repos.carts.page("m1", channel_id=None, limit=50, after=None)
    assert [c["_id"] for c in listed.items] == [conversation_id(key)]
    # An emptied cart leaves the list (it shows non-empty carts only).
    await projector.project(committed([message("8", "never mind")], [], LINES))
    emptied = await recs.repos.carts.page("m1", channel_id=None, limit=50, after=None)
    assert emptied.items == []


async def test_live_events_are_bounded_and_never_hold_up_records(tmp_path: Path) -> None:
    recs = records(tmp_path)
    stuck = FakeRedis()
    stuck.gate.clear()  # Redis pub/sub never answers
    projector = TurnProjector(recs, RedisLiveEvents(stuck, timeout_s=3600), max_live=2)
    projector.start()
    for i in range(6):
        await projector(committed([message(f"s{i}", f"message {i}")], [], []))
    await asyncio.wait_for(projector._turns.join(), 10)  # records done despite stuck publishes
    stored = await recs.repos.messages.since("m1", 0.0, limit=100)
    assert len(stored) == 6 and projector.live_dropped >= 3
    await projector.stop()
    failing = TurnProjector(recs, RedisLiveEvents(FakeRedis(fail=True)))
    failing.start()
    await failing(committed([message("f1", "hi")], [], []))
    await asyncio.wait_for(failing._turns.join(), 10)
    await failing.stop()
    assert failing.live_published == 0 and failing.projected == 1
