"""Delivery of outbox entries: ordered per recipient, rate limited, retried, dead-lettered.

One ``DeliveryWorker`` consumes an outbox stream. Each recipient (a chat) gets its own ordered
lane, so a chat waiting out a 429 never delays another chat, and replies in one chat never
overtake each other. A reply is acknowledged in the outbox only once it was delivered or
dead-lettered; the ``sent`` marker makes a re-read after a crash a no-op.
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
from engine.messages import OutboundReply
from engine.queues import Outbox, StreamConsumer, StreamEntry

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Channel-specific half of delivery: build the provider calls, make one call."""

    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall] | PermanentFailure: ...

    async def send(self, call: ProviderCall) -> SendOutcome: ...


class TokenBucket:
    """A classic token bucket; ``acquire`` sleeps until a token is free (no polling loop)."""

    def __init__(self, rate_per_s: float, burst: float = 1.0) -> None:
        self._rate = rate_per_s
        self._burst = max(burst, 1.0)
        self._tokens = self._burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self._rate <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens < 1.0:
                wait = (1.0 - self._tokens) / self._rate
                await asyncio.sleep(wait)
                self._tokens = 0.0
                self._stamp = time.monotonic()
            else:
                self._tokens -= 1.0


class RateLimits:
    """Per-recipient and global buckets (in-process; bounded by an LRU on recipients)."""

    def __init__(self, per_recipient_s: float, global_s: float, max_recipients: int = 50_000):
        self._per = per_recipient_s
        self._global = TokenBucket(global_s, burst=max(1.0, global_s))
        self._buckets: dict[str, TokenBucket] = {}
        self._max = max_recipients

    async def acquire(self, recipient: str) -> None:
        bucket = self._buckets.pop(recipient, None) or TokenBucket(self._per)
        self._buckets[recipient] = bucket  # re-insert: most recently used last
        if len(self._buckets) > self._max:
            self._buckets.pop(next(iter(self._buckets)))
        await bucket.acquire()
        await self._global.acquire()


def backoff_s(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


@dataclass(slots=True)
class _Lane:
    queue: list[tuple[StreamEntry, OutboundReply]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


DeliveredHook = Callable[[OutboundReply, str, int], None]


class DeliveryWorker:
    def __init__(
        self,
        consumer: StreamConsumer,
        outbox: Outbox,
        sender: Sender,
        limits: RateLimits | None,
        *,
        max_attempts: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_delivered: DeliveredHook | None = None,
        on_dead_letter: Callable[[OutboundReply, str], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._outbox = outbox
        self._sender = sender
        self._limits = limits
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._on_delivered = on_delivered
        self._on_dead_letter = on_dead_letter
        self._lanes: dict[str, _Lane] = {}
        self._stopping = asyncio.Event()
        self.delivered = 0
        self.dead = 0

    async def run(self) -> None:
        await self._consumer.setup()
        while not self._stopping.is_set():
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
            await asyncio.wait(tasks, timeout=5)

    async def dispatch(self, entries: list[StreamEntry]) -> None:
        unreadable: list[StreamEntry] = []
        for entry in entries:
            try:
                reply = OutboundReply.from_dict(entry.payload)
            except (KeyError, TypeError, ValueError):
                unreadable.append(entry)
                continue
            key = f"{reply.channel_id}:{reply.customer_id}"
            lane = self._lanes.setdefault(key, _Lane())
            if any(e.entry_id == entry.entry_id for e, _ in lane.queue):
                continue
            lane.queue.append((entry, reply))
            if lane.task is None or lane.task.done():
                lane.task = asyncio.create_task(self._drain(key, lane))
        if unreadable:
            log.error("dropping unreadable outbox entries", extra={"count": len(unreadable)})
            await self._consumer.ack(unreadable)

    async def _drain(self, key: str, lane: _Lane) -> None:
        while lane.queue:
            entry, reply = lane.queue.pop(0)
            try:
                await self._deliver(reply)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Unknown failure: leave it pending (re-read on restart) rather than lose it.
                log.exception("delivery crashed", extra={"outbox_id": reply.outbox_id})
                continue
            await self._consumer.ack([entry])
        if not lane.queue and self._lanes.get(key) is lane:
            del self._lanes[key]

    async def _deliver(self, reply: OutboundReply) -> None:
        if await self._outbox.already_sent(reply):
            return
        built = await self._sender.calls_for(reply)
        if isinstance(built, PermanentFailure):
            await self._dead(reply, built.reason, 0)
            return
        provider_ids: list[str] = []
        attempts = 0
        for call in built:
            while True:
                attempts += 1
                if self._limits is not None and call.recipient:
                    await self._limits.acquire(call.recipient)
                outcome = await self._sender.send(call)
                if isinstance(outcome, Delivered):
                    provider_ids.append(outcome.provider_message_id)
                    break
                if isinstance(outcome, PermanentFailure):
                    await self._dead(reply, outcome.reason, attempts)
                    return
                assert isinstance(outcome, RetryLater)
                if attempts >= self._max_attempts:
                    await self._dead(reply, f"gave up: {outcome.reason}", attempts)
                    return
                wait = max(outcome.after_s or 0.0, backoff_s(attempts))
                log.warning(
                    "delivery retry",
                    extra={"outbox_id": reply.outbox_id, "reason": outcome.reason, "wait_s": wait},
                )
                await self._sleep(wait)
        await self._outbox.mark_sent(reply, ",".join(provider_ids))
        self.delivered += 1
        if self._on_delivered is not None:
            self._on_delivered(reply, ",".join(provider_ids), attempts)

    async def _dead(self, reply: OutboundReply, reason: str, attempts: int) -> None:
        log.error(
            "reply dead-lettered",
            extra={"outbox_id": reply.outbox_id, "reason": reason, "attempts": attempts},
        )
        await self._outbox.dead_letter(reply, reason, attempts)
        self.dead += 1
        if self._on_dead_letter is not None:
            with contextlib.suppress(Exception):
                self._on_dead_letter(reply, reason)
