"""Delivery of outbox entries: ordered per recipient, rate limited, retried, dead-lettered.

One ``DeliveryWorker`` consumes an outbox stream. Each recipient (a chat) gets its own ordered
lane, so a chat waiting out a 429 never delays another chat, and replies in one chat never
overtake each other. A reply is acknowledged in the outbox only once it was delivered or
dead-lettered; the ``sent`` marker makes a re-read after a crash a no-op.

The stream is shared by every merchant of the kind, and a merchant chooses its channel's
``api_base``: one that accepts connections and never answers would otherwise hold every
connection of the shared HTTP pool and every buffered entry. So what one channel (and one
merchant) may hold is bounded (``DeliveryBounds``): calls in flight, and entries buffered in its
lanes. Entries over a bound stay pending in the stream, unacknowledged, and come back through
the consumer's idle reclaim; every call has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from connectors.base import Delivered, PermanentFailure, ProviderCall, RetryLater, SendOutcome
from engine.domain.messages import OutboundReply
from engine.services.ports import DeliveryLedger, StreamEntry, StreamReader
from observability import metrics, tracing

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Channel-specific half of delivery: build the provider calls, make one call."""

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure: ...

    async def send(self, call: ProviderCall) -> SendOutcome: ...


class Limiter(Protocol):
    async def acquire(self, channel_id: str, recipient: str) -> None: ...


class CircuitBreaker:
    """Per channel: after ``threshold`` consecutive transient failures the channel is "open"
    and no lane calls the platform until a cooldown passed; then ONE probe call decides.

    While a platform is down this stops every conversation's lane from hammering it and, just
    as important, from spending its retry budget: failures while the circuit is open do not
    count as attempts, so an outage of any length ends in delivery, not in dead letters.
    """

    def __init__(
        self,
        threshold: int = 5,
        cooldown_s: float = 1.0,
        max_cooldown_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_channels: int = 10_000,
    ) -> None:
        self._threshold = threshold
        self._base = cooldown_s
        self._max = max_cooldown_s
        self._sleep = sleep
        self._max_channels = max_channels
        self._state: dict[str, _Circuit] = {}

    def is_open(self, channel_id: str) -> bool:
        c = self._state.get(channel_id)
        return c is not None and (c.open_until > 0 or c.probing)

    async def before_call(self, channel_id: str) -> None:
        while True:
            c = self._state.get(channel_id)
            if c is None or (c.open_until == 0 and not c.probing):
                return
            now = time.monotonic()
            if c.open_until > now:
                await self._sleep(c.open_until - now)
                continue
            if not c.probing:
                c.probing = True  # half-open: this caller is the probe
                return
            await self._sleep(min(0.2, self._base))

    def success(self, channel_id: str) -> None:
        self._state.pop(channel_id, None)

    def failure(self, channel_id: str) -> bool:
        """Record a transient failure; True when the channel is (now) open."""
        c = self._state.get(channel_id)
        if c is None:
            if len(self._state) >= self._max_channels:
                self._state.pop(next(iter(self._state)))
            c = self._state[channel_id] = _Circuit(cooldown=self._base)
        c.failures += 1
        if c.probing or c.failures >= self._threshold:
            if c.probing or c.open_until == 0:
                c.open_until = time.monotonic() + c.cooldown
                c.cooldown = min(c.cooldown * 2, self._max)
                log.warning(
                    "circuit open", extra={"channel_id": channel_id, "cooldown_s": c.cooldown}
                )
            c.probing = False
            return True
        return False


@dataclass(slots=True)
class _Circuit:
    cooldown: float
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


def backoff_s(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class DeliveryBounds:
    """What one channel or merchant may hold of a worker shared by every merchant of a kind.

    ``inflight_*``: provider calls waiting for an answer (each holds a pooled connection);
    ``queued_per_channel``: entries buffered in the lanes of one channel (every lane of the
    channel shares it); ``queued_total``: buffered in the worker, past which it stops reading;
    ``send_timeout_s``: the deadline of one provider call, whatever the sender does.
    """

    inflight_per_channel: int = 4
    inflight_per_merchant: int = 16
    queued_per_channel: int = 512
    queued_total: int = 8192
    send_timeout_s: float = 10.0


@dataclass(slots=True)
class _Lane:
    queue: list[tuple[StreamEntry, OutboundReply]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


DeliveredHook = Callable[[OutboundReply, str, int], None]
UnreachableHook = Callable[[OutboundReply, str], None]


class DeliveryWorker:
    def __init__(
        self,
        consumer: StreamReader,
        outbox: DeliveryLedger,
        sender: Sender,
        limits: Limiter | None,
        *,
        max_attempts: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_delivered: DeliveredHook | None = None,
        on_dead_letter: Callable[[OutboundReply, str], None] | None = None,
        breaker: CircuitBreaker | None = None,
        bounds: DeliveryBounds | None = None,
    ) -> None:
        self._consumer = consumer
        self._outbox = outbox
        self._sender = sender
        self._limits = limits
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._on_delivered = on_delivered
        self._on_dead_letter = on_dead_letter
        self._breaker = breaker or CircuitBreaker(sleep=sleep)
        self._bounds = bounds or DeliveryBounds()
        self._lanes: dict[str, _Lane] = {}
        # Entries buffered per channel / merchant (the one being sent included), and the
        # semaphores of the channels and merchants that have any: dropped when that reaches 0.
        self._queued: dict[str, int] = {}
        self._queued_total = 0
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = asyncio.Event()
        self.deferred = 0
        self.delivered = 0
        self.dead = 0

    async def run(self) -> None:
        await self._consumer.setup()
        while not self._stopping.is_set():
            if not self._room.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._room.wait()
                continue
            try:
                entries = await self._consumer.read(count=256, block_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            await self.dispatch(entries)

    async def stop(self) -> None:
        self._stopping.set()
        tasks = [lane.task for lane in self._lanes.values() if lane.task and not lane.task.done()]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:  # their entries stay pending and are re-read by the next worker
                task.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=1)

    async def dispatch(self, entries: list[StreamEntry]) -> None:
        unreadable: list[StreamEntry] = []
        deferred = 0
        for entry in entries:
            try:
                reply = OutboundReply.from_dict(entry.payload)
            except (KeyError, TypeError, ValueError):
                unreadable.append(entry)
                continue
            key = f"{reply.channel_id}:{reply.customer_id}"
            lane = self._lanes.get(key)
            if lane is not None and any(e.entry_id == entry.entry_id for e, _ in lane.queue):
                continue
            if not self._has_room(reply):
                deferred += 1  # left pending: the consumer's idle reclaim hands it back later
                continue
            if lane is None:
                lane = self._lanes[key] = _Lane()
            lane.queue.append((entry, reply))
            self._hold(reply, +1)
            if lane.task is None or lane.task.done():
                lane.task = asyncio.create_task(self._drain(key, lane))
        if deferred:
            self.deferred += deferred
            log.warning("outbox entries deferred (bounds reached)", extra={"count": deferred})
        if unreadable:
            log.error("dropping unreadable outbox entries", extra={"count": len(unreadable)})
            await self._consumer.ack(unreadable)

    def _has_room(self, reply: OutboundReply) -> bool:
        b = self._bounds
        return (
            self._queued_total < b.queued_total
            and self._queued.get("c:" + reply.channel_id, 0) < b.queued_per_channel
        )

    def _hold(self, reply: OutboundReply, delta: int) -> None:
        """Count an entry in (+1) or out (-1) of the buffers of its channel and merchant."""
        for name in ("c:" + reply.channel_id, "m:" + reply.merchant_id):
            left = self._queued.get(name, 0) + delta
            if left > 0:
                self._queued[name] = left
            else:
                self._queued.pop(name, None)
                self._slots.pop(name, None)  # nothing of it waits on or holds its semaphore
        self._queued_total += delta
        if self._queued_total < self._bounds.queued_total:
            self._room.set()
        else:
            self._room.clear()

    def _slot(self, name: str, size: int) -> asyncio.Semaphore:
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = asyncio.Semaphore(size)
        return slot

    async def _send(self, reply: OutboundReply, call: ProviderCall) -> SendOutcome:
        """One provider call inside its channel's and merchant's in-flight caps (always taken
        in that order) and under a deadline: a platform that never answers holds at most
        ``inflight_per_channel`` connections, and each for ``send_timeout_s`` at most."""
        b = self._bounds
        async with (
            self._slot("c:" + reply.channel_id, b.inflight_per_channel),
            self._slot("m:" + reply.merchant_id, b.inflight_per_merchant),
        ):
            try:
                async with asyncio.timeout(b.send_timeout_s):
                    return await self._sender.send(call)
            except TimeoutError:
                return RetryLater("timeout: no answer")

    async def _drain(self, key: str, lane: _Lane) -> None:
        try:
            while lane.queue:
                entry, reply = lane.queue[0]
                try:
                    await self._deliver(reply)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Unknown failure: leave it pending (re-read on restart) rather than lose it.
                    log.exception("delivery crashed", extra={"outbox_id": reply.outbox_id})
                else:
                    await self._consumer.ack([entry])
                finally:
                    lane.queue.pop(0)
                    self._hold(reply, -1)
        finally:
            for _, reply in lane.queue:  # cancelled: what is left stays pending in the stream
                self._hold(reply, -1)
            lane.queue.clear()
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, reply: OutboundReply) -> None:
        with tracing.span(
            "delivery",
            parent=reply.trace,
            kind=tracing.CONSUMER,
            merchant_id=reply.merchant_id,
            attributes={
                "kaleem.channel_kind": reply.channel_kind,
                "kaleem.outbox_id": reply.outbox_id,
            },
        ):
            await self._deliver_traced(reply)

    async def _deliver_traced(self, reply: OutboundReply) -> None:
        if await self._outbox.already_sent(reply):
            tracing.annotate(outcome="already_sent")
            return
        blocked_at = await self._outbox.unreachable_since(reply)
        if blocked_at is not None and blocked_at >= reply.received_at:
            # They blocked us after their last message: sending would only earn another 403.
            await self._dead(reply, "customer unreachable (blocked the bot)", 0)
            return
        built = await self._sender.calls_for(reply)
        if isinstance(built, PermanentFailure):
            await self._dead(reply, built.reason, 0)
            return
        provider_ids: list[str] = []
        attempts = 0
        for call in built:
            while True:
                await self._breaker.before_call(reply.channel_id)
                if self._limits is not None and call.recipient:
                    await self._limits.acquire(reply.channel_id, call.recipient)
                with tracing.span("provider.call", kind=tracing.CLIENT):
                    outcome = await self._send(reply, call)
                    tracing.annotate(outcome=type(outcome).__name__)
                if isinstance(outcome, Delivered):
                    self._breaker.success(reply.channel_id)
                    metrics.PROVIDER_CIRCUIT_OPEN.labels(reply.channel_kind).set(0)
                    provider_ids.append(outcome.provider_message_id)
                    break
                if isinstance(outcome, PermanentFailure):
                    if outcome.unreachable:
                        await self._outbox.mark_unreachable(reply, outcome.reason)
                    await self._dead(reply, outcome.reason, attempts + 1)
                    return
                assert isinstance(outcome, RetryLater)
                was_open = self._breaker.is_open(reply.channel_id)
                now_open = self._breaker.failure(reply.channel_id)
                metrics.PROVIDER_CIRCUIT_OPEN.labels(reply.channel_kind).set(int(now_open))
                metrics.DELIVERY_RETRIES.labels(reply.channel_kind).inc()
                if not (was_open or now_open):
                    attempts += 1  # only failures of a healthy-looking channel spend budget
                if attempts >= self._max_attempts:
                    await self._dead(reply, f"gave up: {outcome.reason}", attempts)
                    return
                wait = max(outcome.after_s or 0.0, backoff_s(max(attempts, 1)))
                log.warning(
                    "delivery retry",
                    extra={"outbox_id": reply.outbox_id, "reason": outcome.reason, "wait_s": wait},
                )
                await self._sleep(wait)
        metrics.TTFR.labels(reply.channel_kind).observe(max(0.0, time.time() - reply.received_at))
        metrics.DELIVERIES.labels(reply.channel_kind, "delivered").inc()
        await self._outbox.mark_sent(reply, ",".join(provider_ids))
        tracing.annotate(outcome="delivered", attempts=attempts + 1, parts=len(provider_ids))
        self.delivered += 1
        if self._on_delivered is not None:
            with contextlib.suppress(Exception):
                self._on_delivered(reply, ",".join(provider_ids), attempts + 1)

    async def _dead(self, reply: OutboundReply, reason: str, attempts: int) -> None:
        log.error(
            "reply dead-lettered",
            extra={"outbox_id": reply.outbox_id, "reason": reason, "attempts": attempts},
        )
        await self._outbox.dead_letter(reply, reason, attempts)
        tracing.annotate(outcome="dead_letter", attempts=attempts)
        metrics.DEAD_LETTERS.labels(reply.channel_kind).inc()
        metrics.DELIVERIES.labels(reply.channel_kind, "dead_letter").inc()
        self.dead += 1
        if self._on_dead_letter is not None:
            with contextlib.suppress(Exception):
                self._on_dead_letter(reply, reason)
