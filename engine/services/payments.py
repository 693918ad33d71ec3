"""Payments: a payment link per order, the provider's webhook confirming it, refunds.

The amount is always the order's total (never a client's number), turned into minor units
once. A payment is named by its order, so a replayed request or chat turn finds the payment
it made instead of asking the provider for a second invoice.

Webhooks are verify-then-record-then-apply: nothing is read before the provider's secret or
signature checks out, the verified event is recorded (deduplicated by the provider's event
id) before the provider gets its 200, and only then applied. Applying is idempotent in every
effect, so a crash part-way leaves a ``recorded`` event that :meth:`Payments.sweep` applies
again with the same outcome: the ledger entry is named by the event, the order moves by
compare-and-set, and the customer's message has an outbox id derived from the event (the
delivery side sends an outbox id at most once).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal, Protocol

import orjson

from connectors.base import ProviderCall
from connectors.payments import PROVIDERS
from engine.domain import ledger
from engine.domain.conversation import conversation_id
from engine.domain.dialogue import intents
from engine.domain.messages import OutboundReply
from engine.domain.payments import (
    FAILED,
    INITIATED,
    PAID,
    REFUNDED,
    Charge,
    Created,
    Declined,
    PaymentEvent,
    Refunded,
    may_become,
    refund_step,
    to_minor,
)
from engine.services.ports import Document, DuplicateKey, LiveEvents
from engine.services.repositories import Repositories
from engine.services.retry import DATABASE, for_payment_call, retrying
from observability import metrics

log = logging.getLogger(__name__)

# Events one sweep applies (a sweep runs at start-up and after each webhook it cannot apply).
SWEEP_BATCH: Final = 200
# How long one request holds the right to ask the provider for a payment's link: longer
# than the payment policy's worst case (3 attempts, 15 s timeouts, 9 s of waits).
CLAIM_S: Final = 60.0
# Order statuses a paid order may have once confirmed (a replay finds it further along).
_CONFIRMED: Final = frozenset({"confirmed", "shipped", "delivered"})
PAID_TEXT: Final = {
    "ar": "تم استلام الدفع ✅ طلبك {order} مؤكد. شكراً لك!",
    "en": "Payment received ✅ Your order {order} is confirmed. Thank you!",
}


class PaymentNotFound(LookupError):
    """No such order or payment for this merchant."""


class PaymentRejected(ValueError):
    """The request cannot be honoured as asked (message safe to show a merchant)."""


class PaymentBusy(RuntimeError):
    """Another request is asking the provider for this order's link right now."""


class ProviderFailed(RuntimeError):
    """The provider could not be reached or refused; the message is one of our fixed phrases."""


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A provider's answer: ``status`` 0 when no answer came (network, timeout, refused)."""

    status: int
    body: bytes = b""


class PaymentHttp(Protocol):
    async def send(self, call: ProviderCall) -> HttpAnswer: ...

    async def aclose(self) -> None: ...


class Cipher(Protocol):
    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


class OutboxWriter(Protocol):
    async def enqueue(self, reply: OutboundReply) -> None: ...


class MessageLog(Protocol):
    async def record_message(self, merchant_id: str, doc: Document) -> None: ...


class ChannelKinds(Protocol):
    async def channel_kind(self, merchant_id: str, channel_id: str) -> str | None:
        """A built-in channel's kind (webchat) or a connected one's; None when it is gone."""
        ...


WebhookOutcome = Literal["unknown", "bad_signature", "ignored", "duplicate", "recorded"]


@dataclass(frozen=True, slots=True)
class Provider:
    kind: str
    api_base: str
    credentials: dict[str, str]

    @property
    def module(self) -> ModuleType:
        return PROVIDERS[self.kind]


def derived(prefix: str, *parts: str) -> str:
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).hexdigest()
    return f"{prefix}_{digest}"


def payment_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "order_id": doc["order_id"],
        "provider": doc["provider"],
        "status": doc["status"],
        "url": doc.get("url") or None,
        "amount_minor": doc["amount_minor"],
        "currency": doc["currency"],
        "refunded_minor": int(doc.get("refunded_minor") or 0),
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def _transient(outcome: HttpAnswer) -> bool:
    return outcome.status == 0 or outcome.status == 429 or outcome.status >= 500


class Payments:
    def __init__(
        self,
        repos: Repositories,
        http: PaymentHttp,
        box: Cipher,
        outbox: OutboxWriter,
        messages: MessageLog,
        live: LiveEvents,
        channels: ChannelKinds,
        *,
        base_url: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repos = repos
        self._http = http
        self._box = box
        self._outbox = outbox
        self._messages = messages
        self._live = live
        self._channels = channels
        self._base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._draw = draw
        self._clock = clock

    async def close(self) -> None:
        await self._http.aclose()

    def webhook_url(self, kind: str, merchant_id: str) -> str:
        return f"{self._base_url}/webhooks/payments/{kind}/{merchant_id}"

    # -- provider configuration ----------------------------------------------------------
    async def configure(
        self, merchant_id: str, kind: str, credentials: Mapping[str, str], api_base: str
    ) -> dict[str, Any]:
        """Store the merchant's provider, credentials encrypted; the masked view."""
        module = PROVIDERS[kind]
        sealed = {name: self._box.encrypt(credentials[name]) for name in module.CREDENTIALS}
        now = self._clock()
        await self._repos.payment_providers.put(
            merchant_id,
            {"kind": kind, "api_base": api_base, "secrets": sealed, "updated_at": now},
        )
        return await self.provider_view(merchant_id) or {}

    async def provider(self, merchant_id: str) -> Provider | None:
        doc = await self._repos.payment_providers.get(merchant_id)
        if doc is None or doc.get("kind") not in PROVIDERS:
            return None
        creds = {name: self._box.decrypt(str(v)) for name, v in dict(doc["secrets"]).items()}
        return Provider(str(doc["kind"]), str(doc["api_base"]), creds)

    async def provider_view(self, merchant_id: str) -> dict[str, Any] | None:
        doc = await self._repos.payment_providers.get(merchant_id)
        if doc is None:
            return None
        kind = str(doc["kind"])
        return {
            "kind": kind,
            "api_base": doc["api_base"],
            "credentials": {name: "…" for name in dict(doc["secrets"])},
            "webhook_url": self.webhook_url(kind, merchant_id),
            "updated_at": doc["updated_at"],
        }

    # -- payments ------------------------------------------------------------------------
    async def get(self, merchant_id: str, payment_id: str) -> Document | None:
        return await self._repos.payments.get(merchant_id, payment_id)

    async def for_order(self, merchant_id: str, order_id: str) -> Document:
        """The order's payment with its link, created at the provider on first ask.

        Raises :class:`PaymentNotFound` (no order), :class:`PaymentRejected` (no provider, an
        order that cannot be paid), :class:`PaymentBusy` (another request is creating it) or
        :class:`ProviderFailed`."""
        payment_id = derived("pay", merchant_id, order_id)
        existing = await self._repos.payments.get(merchant_id, payment_id)
        if existing is not None and existing.get("url"):
            return existing
        order = await self._repos.orders.get(merchant_id, order_id)
        if order is None:
            raise PaymentNotFound("no such order")
        if order["status"] != "new":
            raise PaymentRejected(f"an order that is {order['status']} cannot be paid")
        provider = await self.provider(merchant_id)
        if provider is None:
            raise PaymentRejected(
                "connect a payment provider first (PUT /api/v1/payments/provider)"
            )
        currency = str(order.get("currency") or "SAR").upper()
        amount_minor = to_minor(order["total"], currency)
        if amount_minor <= 0:
            raise PaymentRejected("the order's total is zero")
        if existing is None:
            existing = await self._start(
                merchant_id, payment_id, order, provider.kind, amount_minor, currency
            )
        token, linked = await self._claim(existing)
        if linked is not None:
            return linked
        try:
            return await self._create_at_provider(provider, existing, order, merchant_id)
        finally:
            await self._repos.payments.claim(merchant_id, payment_id, token, "", self._clock())

    async def _create_at_provider(
        self, provider: Provider, existing: Document, order: Document, merchant_id: str
    ) -> Document:
        payment_id, order_id = str(existing["_id"]), str(order["_id"])
        customer = dict(order.get("customer") or {})
        charge = Charge(
            payment_id=payment_id,
            order_id=order_id,
            amount_minor=int(existing["amount_minor"]),
            currency=str(existing["currency"]),
            description=f"Order {order_id}",
            webhook_url=self.webhook_url(provider.kind, merchant_id),
            customer_name=str(customer.get("name") or ""),
            customer_phone=str(customer.get("phone") or ""),
        )
        module = provider.module
        call = module.create_call(provider.api_base, provider.credentials, charge)
        answer = await self._call(call, idempotent=bool(module.CREATE_IDEMPOTENT))
        outcome: Created | Declined = (
            Declined("provider unreachable", True)
            if answer.status == 0
            else module.read_created(answer.status, answer.body)
        )
        if isinstance(outcome, Declined):
            metrics.PAYMENTS.labels(provider.kind, "create_failed").inc()
            raise ProviderFailed(outcome.reason)
        updated = await self._repos.payments.update(
            merchant_id,
            payment_id,
            {
                # The merchant may have switched providers since an earlier failed attempt.
                "provider": provider.kind,
                "provider_ref": outcome.provider_ref,
                "url": outcome.url,
                "updated_at": self._clock(),
            },
            expected=None,
        )
        metrics.PAYMENTS.labels(provider.kind, "created").inc()
        return updated or {**existing, "provider_ref": outcome.provider_ref, "url": outcome.url}

    async def link_for(self, merchant_id: str, order_id: str) -> str | None:
        """The chat's checkout asks here: a link, or None without a provider or when the
        provider failed (the order is placed either way; a later ask retries)."""
        if await self._repos.payment_providers.get(merchant_id) is None:
            return None
        try:
            payment = await self.for_order(merchant_id, order_id)
        except (PaymentNotFound, PaymentRejected, PaymentBusy, ProviderFailed) as exc:
            log.warning("no payment link for a chat order", extra={"reason": str(exc)})
            return None
        return str(payment.get("url") or "") or None

    async def _claim(self, payment: Document) -> tuple[str, Document | None]:
        """Take the right to create the link: ``(token, None)``; ``("", payment)`` when
        another request made the link meanwhile; :class:`PaymentBusy` while another request
        holds the right (a holder that died loses it after ``CLAIM_S``)."""
        merchant_id, payment_id = str(payment["merchant_id"]), str(payment["_id"])
        now = self._clock()
        held = str(payment.get("claim") or "")
        token = secrets.token_hex(8)
        stale = not held or now - float(payment.get("claimed_at") or 0.0) >= CLAIM_S
        if stale and await self._repos.payments.claim(merchant_id, payment_id, held, token, now):
            return token, None
        current = await self._repos.payments.get(merchant_id, payment_id)
        if current is not None and current.get("url"):
            return "", current
        raise PaymentBusy("the payment link is being created; retry shortly")

    async def _start(
        self,
        merchant_id: str,
        payment_id: str,
        order: Document,
        kind: str,
        amount_minor: int,
        currency: str,
    ) -> Document:
        now = self._clock()
        doc: Document = {
            "_id": payment_id,
            "merchant_id": merchant_id,
            "order_id": str(order["_id"]),
            "conversation_key": order.get("conversation_key"),
            "provider": kind,
            "provider_ref": "",
            "provider_payment_id": "",
            "status": INITIATED,
            "url": "",
            "amount_minor": amount_minor,
            "currency": currency,
            "fee_minor": 0,
            "refunded_minor": 0,
            "claim": "",
            "claimed_at": 0.0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._repos.payments.create(dict(doc))
        except DuplicateKey:
            found = await self._repos.payments.get(merchant_id, payment_id)
            if found is None:
                raise
            return found
        return doc

    async def _call(self, call: ProviderCall, *, idempotent: bool) -> HttpAnswer:
        return await retrying(
            for_payment_call(idempotent),
            lambda: self._http.send(call),
            _transient,
            sleep=self._sleep,
            draw=self._draw,
        )

    async def refund(
        self, merchant_id: str, payment_id: str, amount_minor: int | None, request_id: str
    ) -> dict[str, Any]:
        """Refund part or all of a paid payment; the ledger entry is named by the provider's
        refund id, and the provider call by ``request_id`` (Tap's idempotent reference)."""
        payment = await self._repos.payments.get(merchant_id, payment_id)
        if payment is None:
            raise PaymentNotFound("no such payment")
        if payment["status"] != PAID:
            raise PaymentRejected(f"a payment that is {payment['status']} cannot be refunded")
        remaining = int(payment["amount_minor"]) - int(payment.get("refunded_minor") or 0)
        amount = remaining if amount_minor is None else amount_minor
        if not 0 < amount <= remaining:
            raise PaymentRejected(f"amount_minor must be 1..{remaining}")
        provider = await self.provider(merchant_id)
        if provider is None or provider.kind != payment["provider"]:
            raise PaymentRejected("the payment's provider is no longer connected")
        module = provider.module
        currency = str(payment["currency"])
        ref = str(payment.get("provider_payment_id") or payment["provider_ref"])
        if provider.kind == "tap":
            call = module.refund_call(
                provider.api_base,
                provider.credentials,
                ref,
                amount,
                currency,
                derived("rf", request_id),
            )
        else:
            call = module.refund_call(provider.api_base, provider.credentials, ref, amount)
        answer = await self._call(call, idempotent=bool(module.REFUND_IDEMPOTENT))
        outcome: Refunded | Declined = (
            Declined("provider unreachable", True)
            if answer.status == 0
            else module.read_refunded(answer.status, answer.body, amount)
        )
        if isinstance(outcome, Declined):
            metrics.PAYMENTS.labels(provider.kind, "refund_failed").inc()
            raise ProviderFailed(outcome.reason)
        now = self._clock()
        await self._book_refund(payment, provider.kind, outcome.refund_ref, amount, now)
        return {
            "id": outcome.refund_ref,
            "payment_id": payment_id,
            "amount_minor": amount,
            "currency": currency,
            "status": "succeeded",
            "created_at": now,
        }

    # -- webhooks ------------------------------------------------------------------------
    async def receive(
        self, kind: str, merchant_id: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[WebhookOutcome, Document | None]:
        """Verify and record one webhook (what the provider's 200 waits for)."""
        provider = await self.provider(merchant_id) if kind in PROVIDERS else None
        if provider is None or provider.kind != kind:
            return "unknown", None
        module = provider.module
        if not module.verify(provider.credentials, headers, body):
            metrics.PAYMENT_WEBHOOKS.labels(kind, "bad_signature").inc()
            return "bad_signature", None
        event: PaymentEvent | None = module.parse(body)
        if event is None:
            metrics.PAYMENT_WEBHOOKS.labels(kind, "ignored").inc()
            return "ignored", None
        doc: Document = {
            "_id": f"{merchant_id}:{kind}:{event.event_id}",
            "merchant_id": merchant_id,
            "provider": kind,
            "event_id": event.event_id,
            "status": event.status,
            "provider_ref": event.provider_ref,
            "provider_payment_id": event.provider_payment_id,
            "amount_minor": event.amount_minor,
            "currency": event.currency,
            "fee_minor": event.fee_minor,
            "refunded_minor": event.refunded_minor,
            "refund_minor": event.refund_minor,
            "refund_ref": event.refund_ref,
            "metadata": orjson.dumps(event.metadata).decode(),
            "received_at": self._clock(),
        }
        if not await self._repos.payment_events.record(doc):
            stored = await self._repos.payment_events.get(merchant_id, str(doc["_id"]))
            if stored is None or stored.get("state") == "applied":
                metrics.PAYMENT_WEBHOOKS.labels(kind, "duplicate").inc()
                return "duplicate", None
            return "recorded", stored
        metrics.PAYMENT_WEBHOOKS.labels(kind, "recorded").inc()
        return "recorded", doc

    async def sweep(self, *, limit: int = SWEEP_BATCH, older_than_s: float = 0.0) -> int:
        """Apply recorded events whose effects may be incomplete (after a crash, or a database
        outage that outlasted the webhook's own retries). ``older_than_s`` leaves alone the
        events a live webhook handler may still be applying."""
        applied = 0
        cutoff = self._clock() - older_than_s
        for doc in await self._repos.payment_events.unapplied(limit=limit):
            if older_than_s and float(doc.get("received_at") or 0.0) > cutoff:
                continue
            try:
                await self.apply(doc)
            except Exception:
                log.exception("payment event not applied", extra={"provider": doc["provider"]})
                continue
            applied += 1
        return applied

    async def settle(self, event: Document) -> bool:
        """Apply with the database policy (5 retries, 500 ms base): what a webhook whose
        first application failed gets in the background; False leaves it to the next sweep."""

        async def attempt() -> bool:
            try:
                await self.apply(event)
            except Exception:
                log.exception("payment event not applied", extra={"provider": event["provider"]})
                return False
            return True

        return await retrying(
            DATABASE, attempt, lambda ok: not ok, sleep=self._sleep, draw=self._draw
        )

    async def apply(self, event: Document) -> None:
        """Every effect of one recorded event, each idempotent; then mark it applied."""
        merchant_id = str(event["merchant_id"])
        payment = await self._payment_of(event)
        if payment is None:
            metrics.PAYMENT_WEBHOOKS.labels(event["provider"], "unmatched").inc()
        elif event["status"] == PAID:
            await self._paid(event, payment)
        elif event["status"] == FAILED:
            await self._move(payment, FAILED, {})
            await self._live.publish(
                merchant_id,
                "payment.failed",
                {"payment_id": payment["_id"], "order_id": payment["order_id"]},
            )
        elif event["status"] == REFUNDED:
            await self._refunded(event, payment)
        await self._repos.payment_events.mark_applied(merchant_id, str(event["_id"]), self._clock())

    async def _payment_of(self, event: Document) -> Document | None:
        merchant_id = str(event["merchant_id"])
        if event.get("provider_ref"):
            found = await self._repos.payments.by_provider_ref(
                merchant_id, str(event["provider"]), str(event["provider_ref"])
            )
            if found is not None:
                return found
        meta = orjson.loads(str(event.get("metadata") or "{}"))
        payment_id = meta.get("payment_id") if isinstance(meta, dict) else None
        if isinstance(payment_id, str):
            return await self._repos.payments.get(merchant_id, payment_id)
        return None

    async def _move(self, payment: Document, status: str, extra: Document) -> Document | None:
        if not may_become(str(payment["status"]), status):
            return None
        changes = {**extra, "status": status, "updated_at": self._clock()}
        return await self._repos.payments.update(
            str(payment["merchant_id"]), str(payment["_id"]), changes, expected=payment["status"]
        )

    async def _refunded(self, event: Document, payment: Document) -> None:
        """A refund the provider reports: from the refund API (already in the ledger under the
        same name, so nothing changes) or made in the provider's dashboard (the ledger learns
        it here, else the day's settlement would pay the merchant money the customer got
        back). A partial refund leaves the payment ``paid``."""
        if payment["status"] != PAID:
            return
        step = refund_step(
            int(payment["amount_minor"]),
            int(payment.get("refunded_minor") or 0),
            refunded_total=int(event.get("refunded_minor") or 0),
            refund_minor=int(event.get("refund_minor") or 0),
        )
        if step is not None:
            await self._book_refund(
                payment,
                str(event["provider"]),
                str(event.get("refund_ref") or event["event_id"]),
                step[0],
                float(event["received_at"]),
                only_new=True,
            )

    async def _book_refund(
        self,
        payment: Document,
        kind: str,
        refund_ref: str,
        amount: int,
        at: float,
        *,
        only_new: bool = False,
    ) -> None:
        """One refund of ``payment``: its ledger entry (named by ``refund_ref``), the payment's
        refunded total and status, the metric and the agents' live event. ``only_new``: a
        refund the ledger already holds changes nothing more (a webhook of a refund counted
        already); the refund API passes False so a retry after a crash still moves the
        payment."""
        merchant_id = str(payment["merchant_id"])
        payment_id = str(payment["_id"])
        recorded = await self._repos.ledger.record(
            ledger.ledger_entry(
                merchant_id=merchant_id,
                provider=kind,
                provider_event_id=refund_ref,
                kind=ledger.REFUND,
                amount_minor=amount,
                fee_minor=0,
                occurred_at=at,
                payment_id=payment_id,
                order_id=str(payment["order_id"]),
                currency=str(payment["currency"]),
            )
        )
        if only_new and not recorded:
            return
        refunded = int(payment.get("refunded_minor") or 0) + amount
        changes: Document = {"refunded_minor": refunded, "updated_at": self._clock()}
        if refunded >= int(payment["amount_minor"]):
            changes["status"] = REFUNDED
        await self._repos.payments.update(merchant_id, payment_id, changes, expected=PAID)
        metrics.PAYMENTS.labels(kind, "refunded").inc()
        await self._live.publish(
            merchant_id,
            "payment.refunded",
            {"payment_id": payment_id, "order_id": payment["order_id"], "amount_minor": amount},
        )

    async def _paid(self, event: Document, payment: Document) -> None:
        merchant_id = str(payment["merchant_id"])
        kind = str(event["provider"])
        if (
            int(event["amount_minor"]) != int(payment["amount_minor"])
            or event["currency"] != payment["currency"]
        ):
            metrics.PAYMENT_WEBHOOKS.labels(kind, "amount_mismatch").inc()
            log.warning("paid amount differs from the order's", extra={"provider": kind})
            return
        await self._move(
            payment,
            PAID,
            {
                "provider_payment_id": event["provider_payment_id"],
                "fee_minor": int(event["fee_minor"]),
                "paid_at": event["received_at"],
            },
        )
        recorded = await self._repos.ledger.record(
            ledger.ledger_entry(
                merchant_id=merchant_id,
                provider=kind,
                provider_event_id=str(event["event_id"]),
                kind=ledger.CAPTURE,
                amount_minor=int(payment["amount_minor"]),
                fee_minor=int(event["fee_minor"]),
                occurred_at=float(event["received_at"]),
                payment_id=str(payment["_id"]),
                order_id=str(payment["order_id"]),
                currency=str(payment["currency"]),
            )
        )
        if recorded:
            metrics.PAYMENTS.labels(kind, "paid").inc()
            metrics.REVENUE_MINOR.labels(kind, payment["currency"]).inc(
                int(payment["amount_minor"])
            )
        order_id = str(payment["order_id"])
        order = await self._repos.orders.set_status(
            merchant_id, order_id, "new", "confirmed", self._clock()
        ) or await self._repos.orders.get(merchant_id, order_id)
        if order is None or order["status"] not in _CONFIRMED:
            # Paid for an order staff cancelled meanwhile: the money is in the ledger, the
            # customer is not told "confirmed"; the alert sends someone to refund or reopen.
            metrics.PAYMENT_WEBHOOKS.labels(kind, "order_closed").inc()
            log.warning("paid order is not open", extra={"provider": kind})
        else:
            await self._tell_customer(event, payment)
        await self._live.publish(
            merchant_id,
            "payment.paid",
            {
                "payment_id": payment["_id"],
                "order_id": order_id,
                "amount_minor": payment["amount_minor"],
                "currency": payment["currency"],
                "provider": kind,
            },
        )

    async def _tell_customer(self, event: Document, payment: Document) -> None:
        """The confirmation, on the outbox under an id derived from the event: a replay
        enqueues the same id again and the delivery side sends it once."""
        merchant_id = str(payment["merchant_id"])
        key = payment.get("conversation_key")
        if not key:
            return
        conv = await self._repos.conversations.get(merchant_id, conversation_id(str(key)))
        if conv is None:
            return
        kind = await self._channels.channel_kind(merchant_id, str(conv.get("channel_id") or ""))
        if kind is None:
            return
        merchant = await self._repos.merchants.get(merchant_id) or {}
        language = "ar" if merchant.get("default_language") == "ar" else "en"
        text = PAID_TEXT[language].format(order=payment["order_id"])
        now = self._clock()
        outbox_id = derived("pay", str(event["_id"]))
        await self._outbox.enqueue(
            OutboundReply(
                outbox_id=outbox_id,
                merchant_id=merchant_id,
                channel_id=str(conv["channel_id"]),
                channel_kind=kind,
                customer_id=str(conv.get("customer_id") or ""),
                text=text,
                intent=intents.AGENT,
                handoff=False,
                in_reply_to=(),
                received_at=now,
                language=language,
            )
        )
        await self._messages.record_message(
            merchant_id,
            {
                "_id": f"out:{outbox_id}",
                "conversation_key": key,
                "direction": "out",
                "text": text,
                "intent": "payment",
                "author": "payments",
                "handoff": False,
                "at": now,
            },
        )
