"""Moyasar: invoices (a hosted payment page per order) and the payment webhooks.

Amounts are integers in the smallest currency unit (halalas). The API authenticates with the
secret key as the HTTP Basic user and an empty password. A webhook carries the dashboard's
``secret_token`` inside its JSON body (there is no signature header), so verification is a
constant-time comparison of that field. Invoice creation takes no idempotency key, so it is
never retried after an answer that leaves its outcome unknown.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any, Final

from connectors.base import ProviderCall
from connectors.payments._json import integer, load_object, obj, text
from engine.domain.payments import (
    FAILED,
    PAID,
    REFUNDED,
    Charge,
    Created,
    Declined,
    PaymentEvent,
    Refunded,
    answer_outcome,
)

KIND: Final = "moyasar"
API_BASE: Final = "https://api.moyasar.com"
API_HOSTS: Final = ("api.moyasar.com",)
CREDENTIALS: Final = ("secret_key", "webhook_secret")
# Invoice creation carries no idempotency key: an unknown outcome must not be retried.
CREATE_IDEMPOTENT: Final = False
REFUND_IDEMPOTENT: Final = False
_EVENTS: Final = {"payment_paid": PAID, "payment_failed": FAILED, "payment_refunded": REFUNDED}


def _headers(creds: Mapping[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{creds['secret_key']}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": "application/json"}


def create_call(api_base: str, creds: Mapping[str, str], charge: Charge) -> ProviderCall:
    body: dict[str, Any] = {
        "amount": charge.amount_minor,
        "currency": charge.currency,
        "description": charge.description,
        "metadata": {"payment_id": charge.payment_id, "order_id": charge.order_id},
    }
    if charge.return_url:
        body["success_url"] = charge.return_url
    return ProviderCall(
        "POST", f"{api_base.rstrip('/')}/v1/invoices", body, headers=_headers(creds)
    )


def read_created(status: int, body: bytes) -> Created | Declined:
    if status not in (200, 201):
        return answer_outcome(status)
    doc = load_object(body)
    ref, url = text(doc, "id"), text(doc, "url")
    if not ref or not url.startswith("https://"):
        return Declined("provider answered unexpectedly", False, status)
    return Created(ref, url)


def refund_call(
    api_base: str, creds: Mapping[str, str], provider_payment_id: str, amount_minor: int
) -> ProviderCall:
    url = f"{api_base.rstrip('/')}/v1/payments/{provider_payment_id}/refund"
    return ProviderCall("POST", url, {"amount": amount_minor}, headers=_headers(creds))


def read_refunded(status: int, body: bytes, amount_minor: int) -> Refunded | Declined:
    """Moyasar answers with the payment; its ``refunded`` total names this refund."""
    if status not in (200, 201):
        return answer_outcome(status)
    doc = load_object(body)
    ref = text(doc, "id")
    if not ref or (text(doc, "status") != "refunded" and integer(doc, "refunded") == 0):
        return Declined("provider answered unexpectedly", False, status)
    return Refunded(f"{ref}:refund:{integer(doc, 'refunded')}", amount_minor)


def verify(creds: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    """The body's ``secret_token`` equals the merchant's webhook secret (constant time)."""
    expected = creds.get("webhook_secret", "")
    token = text(load_object(body), "secret_token")
    if not expected or not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def parse(body: bytes) -> PaymentEvent | None:
    """The event in a verified webhook, or None for an event type we do not act on."""
    doc = load_object(body)
    status = _EVENTS.get(text(doc, "type"))
    event_id = text(doc, "id")
    data = obj(doc, "data")
    if status is None or not event_id or not text(data, "id"):
        return None
    metadata = {k: v for k, v in obj(data, "metadata").items() if isinstance(v, str)}
    return PaymentEvent(
        provider=KIND,
        event_id=event_id,
        status=status,
        provider_ref=text(data, "invoice_id"),
        provider_payment_id=text(data, "id"),
        amount_minor=integer(data, "amount"),
        currency=text(data, "currency").upper() or "SAR",
        fee_minor=integer(data, "fee"),
        refunded_minor=integer(data, "refunded"),
        # The refund API's answer names a refund by the total it reached (``read_refunded``):
        # the same name here makes a refund seen both ways one ledger entry.
        refund_ref=f"{text(data, 'id')}:refund:{integer(data, 'refunded')}"
        if status == REFUNDED
        else "",
        metadata=metadata,
    )
