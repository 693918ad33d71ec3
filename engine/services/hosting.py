"""Virtual conversation actors, many per process.

A host owns some inbox partitions. Each conversation seen there gets a tiny in-memory actor:
a mailbox and at most one running turn. Messages that arrive while a turn runs wait in the
mailbox and are answered together in the next turn (coalescing), so turns never interleave and
no lock is polled. State is checkpointed after every turn and restored on activation, so an
idle conversation can be dropped from memory (passivated) and a restarted host picks up where
the last one stopped. Inbox entries are acknowledged only after the turn's commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.domain.conversation import ConversationState, MerchantProfile, TurnResult
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage, OutboundReply
from engine.services.fairness import FairGate
from engine.services.ports import StreamEntry, StreamReader
from observability import tracing

log = logging.getLogger(__name__)

TURN_ATTEMPTS = 4
# Messages answered together in one turn at most: a burst (or a flood) of messages in one
# conversation becomes several bounded turns, never one turn whose text grows without limit.
MAX_BATCH = 16


InboxReader = StreamReader  # what a host needs of its inbox


class Checkpoints(Protocol):
    """Where turns commit (``engine.adapters.redis.queues.TurnCommitter`` in production)."""

    async def load_state(
        self, merchant_id: str, conversation_key: str
    ) -> dict[str, Any] | None: ...

    async def commit(
        self,
        merchant_id: str,
        conversation_key: str,
        state: dict[str, Any],
        reply: OutboundReply | None,
    ) -> None: ...


class MerchantDirectory(Protocol):
    async def profile(self, merchant_id: str) -> MerchantProfile | None: ...


@dataclass(frozen=True, slots=True)
class CommittedTurn:
    """A turn whose checkpoint (and reply) are in Redis: what staff-facing views need of it."""

    message: InboundMessage  # the batch's first message (channel, customer, trace)
    result: TurnResult
    cart_before: list[dict[str, Any]]
    turn_s: float
    committed_at: float

    @property
    def cart_changed(self) -> bool:
        return self.result.cart_edited or self.result.state.cart != self.cart_before


class TurnObserver(Protocol):
    """Called after each commit that matters to staff (a reply, a message, a cart change).

    Awaited before the inbox entries are acknowledged; implementations must return quickly
    (hand the work to a bounded queue) and never raise.
    """

    async def __call__(self, turn: CommittedTurn) -> None: ...


@dataclass(slots=True)
class _Conversation:
    key: str
    pending: list[tuple[StreamEntry, InboundMessage]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    state: ConversationState | None = None
    last_active: float = 0.0

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


class ConversationHostCore:
    def __init__(
        self,
        consumer: InboxReader,
        committer: Checkpoints,
        turns: TurnService,
        merchants: MerchantDirectory,
        *,
        max_concurrent_turns: int = 64,
        max_turns_per_merchant: int = 8,
        max_pending: int = 10_000,
        idle_passivate_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        observer: TurnObserver | None = None,
    ) -> None:
        self._consumer = consumer
        self._committer = committer
        self._turns = turns
        self._merchants = merchants
        # Turns take slots round-robin per merchant, at most ``max_turns_per_merchant`` of one
        # merchant at a time: a merchant's flood of conversations queues behind its own cap,
        # and another merchant's message gets the next free slot instead of waiting for the
        # whole flood (the embedder behind the turns is shared too).
        self._gate = FairGate(max_concurrent_turns, per_key=max_turns_per_merchant)
        self._max_pending = max_pending
        self._idle_s = idle_passivate_s
        self._clock = clock
        self._observer = observer
        self._convs: dict[str, _Conversation] = {}
        self._pending_total = 0
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        self.turns_done = 0
        self.passivated = 0

    # -- loop --------------------------------------------------------------------------
    async def run(self) -> None:
        await self._consumer.setup()
        sweeper = asyncio.create_task(self._sweep())
        try:
            while not self._stopping.is_set():
                await self._room.wait()
                try:
                    entries = await self._consumer.read(count=128, block_ms=500)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("inbox read failed; retrying")
                    await asyncio.sleep(0.5)
                    continue
                await self.dispatch(entries)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [c.task for c in self._convs.values() if c.busy and c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    async def dispatch(self, entries: list[StreamEntry]) -> None:
        empty: list[StreamEntry] = []
        for entry in entries:
            if not entry.payload:
                empty.append(entry)
                continue
            try:
                message = InboundMessage.from_dict(entry.payload)
            except (KeyError, TypeError, ValueError):
                log.error("dropping unreadable inbox entry", extra={"entry": entry.entry_id})
                empty.append(entry)
                continue
            conv = self._convs.get(message.conversation_key)
            if conv is None:
                conv = self._convs[message.conversation_key] = _Conversation(
                    message.conversation_key
                )
            if any(e.entry_id == entry.entry_id for e, _ in conv.pending):
                continue  # re-read of an entry already waiting here
            conv.pending.append((entry, message))
            conv.last_active = self._clock()
            self._pending_total += 1
            if not conv.busy:
                conv.task = asyncio.create_task(self._drain(conv))
        if self._pending_total >= self._max_pending:
            self._room.clear()
        await self._consumer.ack(empty)

    # -- one conversation ------------------------------------------------------------------
    async def _drain(self, conv: _Conversation) -> None:
        while conv.pending:
            batch, conv.pending = conv.pending[:MAX_BATCH], conv.pending[MAX_BATCH:]
            async with self._gate.turn(batch[0][1].merchant_id):
                await self._turn_with_retries(conv, batch)
            self._pending_total -= len(batch)
            if self._pending_total < self._max_pending:
                self._room.set()
            conv.last_active = self._clock()

    async def _turn_with_retries(
        self, conv: _Conversation, batch: list[tuple[StreamEntry, InboundMessage]]
    ) -> None:
        for attempt in range(1, TURN_ATTEMPTS + 1):
            try:
                await self._turn(conv, batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                conv.state = None  # reload the checkpoint: the failed turn may have half-run
                log.exception("turn failed", extra={"conversation": conv.key, "attempt": attempt})
                if attempt == TURN_ATTEMPTS:
                    await self._fallback(conv, batch)
                    return
                await asyncio.sleep(min(0.25 * 2**attempt, 4.0))

    async def _load(self, message: InboundMessage) -> ConversationState:
        raw = await self._committer.load_state(message.merchant_id, message.conversation_key)
        return ConversationState.from_dict(raw) if raw else ConversationState.new(message)

    async def _turn(
        self, conv: _Conversation, batch: list[tuple[StreamEntry, InboundMessage]]
    ) -> None:
        """One traced turn: continues the first message's trace, links the coalesced ones."""
        first = batch[0][1]
        with tracing.span(
            "turn",
            parent=first.trace,
            kind=tracing.CONSUMER,
            merchant_id=first.merchant_id,
            attributes={"kaleem.channel_kind": first.channel_kind, "kaleem.messages": len(batch)},
            links=[m.trace for _, m in batch[1:]],
        ):
            await self._run_turn(conv, batch)

    async def _run_turn(
        self, conv: _Conversation, batch: list[tuple[StreamEntry, InboundMessage]]
    ) -> None:
        started = time.perf_counter()
        first = batch[0][1]
        if conv.state is None:
            conv.state = await self._load(first)
        merchant = await self._merchants.profile(first.merchant_id)
        if merchant is None:
            log.warning(
                "message for unknown merchant dropped", extra={"merchant": first.merchant_id}
            )
            await self._consumer.ack([e for e, _ in batch])
            return
        messages = [m for _, m in batch]
        # Work on a copy: a failed commit must not leave the in-memory state ahead of Redis.
        before = conv.state.to_dict()
        working = ConversationState.from_dict(before)
        result = await self._turns.run_turn(working, messages, merchant, self._clock())
        after = result.state.to_dict()
        if result.reply is not None:
            tracing.annotate(intent=result.reply.intent, handoff=result.reply.handoff)
            reply = tracing.carry(result.reply)  # the delivery continues this turn's trace
            with tracing.span("outbox.write"):
                await self._committer.commit(first.merchant_id, conv.key, after, reply)
            self.turns_done += 1
        elif after != before:
            # No reply, but a takeover, a staff cart edit or a message heard during a takeover
            # changed the state: checkpoint it, or a passivation would forget it.
            await self._committer.commit(first.merchant_id, conv.key, after, None)
        conv.state = result.state
        await self._observe(first, result, before["cart"], time.perf_counter() - started)
        await self._consumer.ack([e for e, _ in batch])

    async def _observe(
        self,
        first: InboundMessage,
        result: TurnResult,
        cart_before: list[dict[str, Any]],
        turn_s: float,
    ) -> None:
        turn = CommittedTurn(first, result, cart_before, turn_s, self._clock())
        if self._observer is None or not (result.reply or result.heard or turn.cart_changed):
            return
        try:
            await self._observer(turn)
        except Exception:  # staff views are derived data: never fail a committed turn on them
            log.exception("turn observer failed", extra={"conversation": first.conversation_key})

    async def _fallback(
        self, conv: _Conversation, batch: list[tuple[StreamEntry, InboundMessage]]
    ) -> None:
        """After repeated failures the customer still gets one honest answer, never silence."""
        messages = [m for _, m in batch]
        try:
            started = time.perf_counter()
            state = await self._load(messages[0])
            before = state.to_dict()
            result = self._turns.fallback_turn(state, messages, self._clock())
            after = result.state.to_dict()
            if result.reply is not None or after != before:
                await self._committer.commit(messages[0].merchant_id, conv.key, after, result.reply)
            conv.state = result.state
            await self._observe(messages[0], result, before["cart"], time.perf_counter() - started)
            await self._consumer.ack([e for e, _ in batch])
        except Exception:
            # Leave the entries pending: the next host start re-reads and answers them.
            log.exception("fallback failed; entries stay pending", extra={"conversation": conv.key})

    # -- passivation -------------------------------------------------------------------------
    async def _sweep(self) -> None:
        interval = max(0.5, min(self._idle_s / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            self.passivate_idle()

    def passivate_idle(self) -> int:
        now = self._clock()
        idle = [
            k
            for k, c in self._convs.items()
            if not c.busy and not c.pending and now - c.last_active >= self._idle_s
        ]
        for k in idle:
            del self._convs[k]
        self.passivated += len(idle)
        return len(idle)

    def stats(self) -> dict[str, int]:
        return {
            "active": len(self._convs),
            "busy": sum(1 for c in self._convs.values() if c.busy),
            "pending": self._pending_total,
            "turns": self.turns_done,
            "passivated": self.passivated,
        }
