"""Intake: what a channel's input half produced becomes durable messages and delivery facts.

Every channel enters here after its signature was verified: provider webhooks, the webchat
socket and the playground. A message is acknowledged to its sender only after ``accept``
returned, i.e. after the durable inbox append (dedupe + append in one script); a redelivery is
recognised by its provider message id and not appended twice. Messages are appended in order,
so one conversation's messages keep their order within a batched webhook.
"""

from __future__ import annotations

from typing import Any, Protocol

from connectors.base import Event, Inbound
from engine.domain.channels import Channel
from engine.domain.messages import InboundMessage
from observability import metrics, tracing


class InboxPort(Protocol):
    async def append(self, message: InboundMessage) -> bool:
        """True when the message is new and now durable; False for a duplicate."""
        ...

    async def mark_seen(self, merchant_id: str, channel_id: str, message_id: str) -> bool: ...


class DeliveryFacts(Protocol):
    async def record_delivery(
        self, merchant_id: str, channel_id: str, provider_message_id: str, fields: dict[str, Any]
    ) -> None: ...


def event_fields(event: Event) -> dict[str, object]:
    """What a status, reaction or echo says about one of our sent messages."""
    fields: dict[str, object] = {f"{event.kind}_at": event.at}
    if event.kind == "status":
        fields["status"] = event.value
        fields[f"{event.value}_at"] = event.at
        if event.detail:
            fields["error"] = event.detail
    elif event.kind == "reaction":
        fields["reaction"] = event.value
    else:
        fields["echoed"] = True
    return fields


class Intake:
    def __init__(self, inbox: InboxPort, deliveries: DeliveryFacts) -> None:
        self._inbox = inbox
        self._deliveries = deliveries

    async def append(self, message: InboundMessage) -> bool:
        """One message, traced; True when it is new (and now durable)."""
        with tracing.span(
            "inbox.append",
            merchant_id=message.merchant_id,
            attributes={
                "kaleem.channel_kind": message.channel_kind,
                "kaleem.message_id": message.message_id,
            },
        ):
            accepted = await self._inbox.append(tracing.carry(message))
            tracing.annotate(duplicate=not accepted)
        return accepted

    async def accept(self, channel: Channel, inbound: Inbound) -> frozenset[str]:
        """Append every message, remember ignored updates, record delivery facts; the ids of
        the messages that were new. If an append fails, the whole webhook fails (the provider
        redelivers it, and what was appended already is then a duplicate)."""
        accepted: set[str] = set()
        for message in inbound.messages:
            if await self.append(message):
                accepted.add(message.message_id)
        for seen in inbound.seen:
            await self._inbox.mark_seen(channel.merchant_id, channel.id, seen)
        for event in inbound.events:
            await self._deliveries.record_delivery(
                channel.merchant_id, channel.id, event.provider_message_id, event_fields(event)
            )
        kind = channel.kind
        duplicates = len(inbound.messages) - len(accepted)
        if accepted:
            metrics.WEBHOOKS.labels(kind, "accepted").inc(len(accepted))
        if duplicates:
            metrics.WEBHOOKS.labels(kind, "duplicate").inc(duplicates)
        if inbound.events or inbound.ignored or not inbound.messages:
            metrics.WEBHOOKS.labels(kind, "ignored").inc(len(inbound.events) + inbound.ignored or 1)
        return frozenset(accepted)
