"""What a committed turn means for staff: message records, the cart list and live events.

The conversation host commits a turn (checkpoint + reply, one Redis MULTI) and hands it here;
one worker per host writes, in commit order, the messages the customer sent (answered or not —
during a takeover the bot is silent but nothing the customer says may be lost from the record),
the bot's reply, and the ``carts`` projection; then it queues the live events for agents.

Two bounded queues, two kinds of guarantee:
- records: the host awaits room when the queue is full (backpressure, never a silent drop);
  idempotent by ``_id``, so a replayed turn overwrites, never duplicates;
- live events: ``put_nowait`` and dropped (counted) when full, each publish bounded by a
  timeout; a lost live event only delays a screen refresh, and it can never fail or delay a
  turn, nor the records.
One worker per host keeps a conversation's writes in order: a conversation lives on one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from engine.domain.carts import cart_items, cart_total
from engine.domain.conversation import conversation_id
from engine.services.hosting import CommittedTurn
from engine.services.ports import Document, LiveEvents
from engine.services.repositories import RecordKeeping

log = logging.getLogger(__name__)

MAX_TEXT = 4096


def inbound_id(merchant_id: str, channel_id: str, message_id: str) -> str:
    """Record ids are global (one table for every merchant), and a platform's message id is
    unique only within what produced it: built-in channels (webchat, playground) share one
    channel id across merchants, so the merchant is part of the id. The message id stays the
    last ``:``-separated part (the webchat history reads the widget's own id from it)."""
    return f"in:{merchant_id}:{channel_id}:{message_id}"


def cart_out(doc: Document) -> dict[str, Any]:
    """The cart as the admin API and the live event show it (one shape, one place)."""
    lines = list(doc.get("items") or [])
    total, currency = cart_total(lines)
    return {
        "conversation_id": doc["_id"],
        "channel_id": doc.get("channel_id", ""),
        "customer_id": doc.get("customer_id", ""),
        "customer_name": doc.get("customer_name"),
        "items": cart_items(lines),
        "item_count": sum(int(i.get("qty") or 1) for i in lines),
        "total": total,
        "currency": currency,
        "updated_at": doc.get("updated_at"),
    }


def cart_projection(
    merchant_id: str,
    conversation_key: str,
    lines: list[dict[str, Any]],
    *,
    updated_at: float,
    customer_name: str | None = None,
) -> Document:
    """The ``carts`` record of one conversation; its id is the conversation's id."""
    _, channel_id, customer_id = [*conversation_key.split(":", 2), "", ""][:3]
    doc: Document = {
        "_id": conversation_id(conversation_key),
        "merchant_id": merchant_id,
        "conversation_key": conversation_key,
        "channel_id": channel_id,
        "customer_id": customer_id,
        "items": cart_items(lines),
        "updated_at": updated_at,
    }
    if customer_name:
        doc["customer_name"] = customer_name[:120]
    return doc


class TurnProjector:
    def __init__(
        self,
        records: RecordKeeping,
        live: LiveEvents,
        *,
        max_records: int = 4096,
        max_live: int = 1024,
        max_batch: int = 64,
    ) -> None:
        self._records = records
        self._max_batch = max(1, max_batch)
        self._publisher = live
        self._turns: asyncio.Queue[CommittedTurn] = asyncio.Queue(max_records)
        self._live: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(max_live)
        self._tasks: list[asyncio.Task[None]] = []
        self.live_dropped = 0
        self.live_published = 0
        self.projected = 0

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._record_loop()),
                asyncio.create_task(self._live_loop()),
            ]

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Finish what is queued (bounded wait), then stop the workers."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._turns.join(), timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def __call__(self, turn: CommittedTurn) -> None:
        """The host's ``TurnObserver``: waits only when ``max_records`` turns are behind."""
        await self._turns.put(turn)

    async def _record_loop(self) -> None:
        while True:
            batch = [await self._turns.get()]
            while len(batch) < self._max_batch and not self._turns.empty():
                batch.append(self._turns.get_nowait())
            try:
                await self._project_batch(batch)
            finally:
                for _ in batch:
                    self._turns.task_done()

    async def _project_batch(self, batch: list[CommittedTurn]) -> None:
        """Conversations side by side, each conversation's turns in commit order.

        One turn is four writes, each awaited before the next (its summary follows its
        message), so one turn at a time cost four commits: four fsyncs a turn, on the disk the
        inbox's fsyncs share. Writes waiting together share one commit in the record store,
        so the conversations of a batch advance together: four commits for the batch (per turn
        of its busiest conversation), however many conversations it holds.
        """
        chains: dict[str, list[CommittedTurn]] = {}
        for turn in batch:
            chains.setdefault(turn.message.conversation_key, []).append(turn)
        await asyncio.gather(*(self._project_chain(turns) for turns in chains.values()))

    async def _project_chain(self, turns: list[CommittedTurn]) -> None:
        for turn in turns:
            try:
                for event in await self.project(turn):
                    self._emit(turn.message.merchant_id, *event)
            except Exception:
                log.exception(
                    "recording a turn failed",
                    extra={"conversation": turn.message.conversation_key},
                )

    def _emit(self, merchant_id: str, kind: str, data: dict[str, Any]) -> None:
        try:
            self._live.put_nowait((merchant_id, kind, data))
        except asyncio.QueueFull:
            self.live_dropped += 1

    async def _live_loop(self) -> None:
        while True:
            merchant_id, kind, data = await self._live.get()
            if await self._publisher.publish(merchant_id, kind, data):
                self.live_published += 1

    async def project(self, turn: CommittedTurn) -> list[tuple[str, dict[str, Any]]]:
        """Write the turn's records; return the live events to publish (kind, data)."""
        first, result = turn.message, turn.result
        merchant_id, key = first.merchant_id, first.conversation_key
        cid = conversation_id(key)
        events: list[tuple[str, dict[str, Any]]] = []
        base = {"conversation_id": cid, "channel_id": first.channel_id}
        for m in result.heard:
            doc: Document = {
                "_id": inbound_id(merchant_id, m.channel_id, m.message_id),
                "conversation_key": key,
                "direction": "in",
                "text": m.text[:MAX_TEXT],
                "at": m.received_at,
            }
            if result.reply is None or m.message_id not in result.reply.in_reply_to:
                doc["answered"] = False  # heard during a takeover: the bot stayed silent
            await self._records.record_message(merchant_id, doc)
            events.append(("message.created", {**base, **_message_out(doc)}))
        reply = result.reply
        if reply is not None:
            doc = {
                "_id": f"out:{reply.outbox_id}",
                "conversation_key": key,
                "direction": "out",
                "text": reply.text,
                "intent": reply.intent,
                "products": [p.to_dict() for p in reply.products],
                "handoff": reply.handoff,
                "at": turn.committed_at,
            }
            await self._records.record_message(merchant_id, doc)
            events.append(("message.created", {**base, **_message_out(doc)}))
        if turn.cart_changed:
            events.append(("cart.updated", await self._project_cart(turn)))
        self.projected += 1
        return events

    async def _project_cart(self, turn: CommittedTurn) -> dict[str, Any]:
        first, lines = turn.message, turn.result.state.cart
        carts = self._records.repos.carts
        name = next((m.customer_name for m in turn.result.heard if m.customer_name), None)
        doc = cart_projection(
            first.merchant_id,
            first.conversation_key,
            lines,
            updated_at=turn.committed_at,
            customer_name=name,
        )
        if lines:
            await carts.save(first.merchant_id, doc)
        else:  # the list shows non-empty carts only
            await carts.remove(first.merchant_id, str(doc["_id"]))
        return cart_out(doc)


def _message_out(doc: Document) -> dict[str, Any]:
    """Same fields as the admin API's ``MessageOut``."""
    return {
        "id": doc["_id"],
        "direction": doc["direction"],
        "text": doc["text"],
        "at": doc["at"],
        "intent": doc.get("intent"),
        "author": doc.get("author"),
        "handoff": doc.get("handoff"),
        "answered": doc.get("answered", True) if doc["direction"] == "in" else None,
        "products": doc.get("products") or None,
    }
