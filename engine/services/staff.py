"""What staff do to a conversation, ordered with the bot's turns.

A takeover, a hand-back or a cart edit travels as a control message through the
conversation's own durable inbox: one actor, one mailbox, so it is applied in order with the
customer's messages and never lost (a passivated conversation is woken by it, a host that is
down finds it when it comes back). The checkpoint is also edited at once, so staff (and an
idle actor that restores from it) read their own write before the control is applied. An
agent's reply goes out exactly like the bot's: an ``OutboundReply`` on the channel's outbox,
so the delivery workers (rate limits, retries, dead letters) treat it the same.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

from engine.domain.carts import CART_CONTROL, encode_control
from engine.domain.conversation import CONTROL
from engine.domain.dialogue import intents
from engine.domain.messages import InboundMessage, OutboundReply
from engine.services.intake import InboxPort
from engine.services.ports import Document


class CheckpointEditor(Protocol):
    async def load_state(
        self, merchant_id: str, conversation_key: str
    ) -> dict[str, Any] | None: ...

    async def edit_state(
        self, merchant_id: str, conversation_key: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge ``changes`` into a checkpoint (atomically); the new state, or None."""
        ...


class OutboxWriter(Protocol):
    async def enqueue(self, reply: OutboundReply) -> None: ...


class MessageLog(Protocol):
    async def record_message(self, merchant_id: str, doc: Document) -> None: ...


class StaffDesk:
    def __init__(
        self,
        inbox: InboxPort,
        checkpoints: CheckpointEditor,
        outbox: OutboxWriter,
        messages: MessageLog,
    ) -> None:
        self._inbox = inbox
        self._checkpoints = checkpoints
        self._outbox = outbox
        self._messages = messages

    async def state(self, merchant_id: str, conv: Document) -> dict[str, Any]:
        return await self._checkpoints.load_state(merchant_id, str(conv["conversation_key"])) or {}

    async def pause(self, merchant_id: str, conv: Document, kind: str, paused: bool) -> None:
        """Take the conversation from the bot (``paused``) or hand it back."""
        await self._edit(merchant_id, conv, {"paused": paused})
        await self._control(merchant_id, conv, kind, "pause" if paused else "resume")

    async def set_cart(
        self, merchant_id: str, conv: Document, kind: str, lines: list[dict[str, Any]], now: float
    ) -> None:
        """Replace the cart; an empty cart also ends a checkout in progress."""
        changes: dict[str, Any] = {"cart": lines, "updated_at": now}
        if not lines:
            changes["checkout"] = {}
        await self._edit(merchant_id, conv, changes)
        await self._control(merchant_id, conv, kind, CART_CONTROL, encode_control(lines))

    async def reply(
        self, merchant_id: str, conv: Document, kind: str, text: str, author: str
    ) -> Document:
        """Send an agent's words through the channel; the message record it leaves."""
        now = time.time()
        reply = OutboundReply(
            outbox_id=f"agent-{secrets.token_hex(10)}",
            merchant_id=merchant_id,
            channel_id=str(conv.get("channel_id") or ""),
            channel_kind=kind,
            customer_id=str(conv.get("customer_id") or ""),
            text=text,
            intent=intents.AGENT,
            handoff=False,
            in_reply_to=(),
            received_at=now,
        )
        await self._outbox.enqueue(reply)
        message: Document = {
            "_id": f"out:{reply.outbox_id}",
            "conversation_key": conv["conversation_key"],
            "direction": "out",
            "text": text,
            "intent": intents.AGENT,
            "author": author,
            "handoff": False,
            "at": now,
        }
        await self._messages.record_message(merchant_id, message)
        return message

    async def _edit(self, merchant_id: str, conv: Document, changes: dict[str, Any]) -> None:
        await self._checkpoints.edit_state(merchant_id, str(conv["conversation_key"]), changes)

    async def _control(
        self, merchant_id: str, conv: Document, kind: str, control: str, payload: str = ""
    ) -> None:
        await self._inbox.append(
            InboundMessage(
                merchant_id=merchant_id,
                channel_id=str(conv.get("channel_id") or ""),
                channel_kind=kind,
                customer_id=str(conv.get("customer_id") or ""),
                message_id=f"ctl-{secrets.token_hex(10)}",
                text=payload,
                received_at=time.time(),
                trace={CONTROL: control},
            )
        )
