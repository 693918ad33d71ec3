"""Tap: charges (a hosted payment page per order) and the charge webhook.

Amounts are decimals in major units, written with the currency's own number of decimals
(``10.50`` SAR, ``1.250`` KWD). The API authenticates with the secret key as a bearer token.
A webhook is the charge object itself, signed by the ``hashstring`` header: HMAC-SHA256 with
the secret key over ``x_id…x_amount…x_currency…x_gateway_reference…x_payment_reference…
x_status…x_created…``. Charges and refunds carry ``reference.idempotent``, which Tap honours
for 24 h, so both may be retried safely.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from connectors.base import ProviderCall
from connectors.payments._json import load_object, obj, text
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
    format_major,
    to_minor,
)

KIND: Final = "tap"
API_BASE: Final = "https://api.tap.company"
API_HOSTS: Final = ("api.tap.company",)
CREDENTIALS: Final = ("secret_key",)
CREATE_IDEMPOTENT: Final = True
REFUND_IDEMPOTENT: Final = True
HASH_HEADER: Final = "hashstring"
_FAILED: Final = frozenset(
    {"FAILED", "DECLINED", "CANCELLED", "ABANDONED", "RESTRICTED", "VOID", "TIMEDOUT"}
)


def _headers(creds: Mapping[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds['secret_key']}", "Accept": "application/json"}


def _major(amount_minor: int, currency: str) -> float:
    return float(format_major(amount_minor, currency))


def create_call(api_base: str, creds: Mapping[str, str], charge: Charge) -> ProviderCall:
    body: dict[str, Any] = {
        "amount": _major(charge.amount_minor, charge.currency),
        "currency": charge.currency,
        "description": charge.description,
        "customer": {"first_name": charge.customer_name or "Customer"},
        "source": {"id": "src_all"},
        "post": {"url": charge.webhook_url},
        "redirect": {"url": charge.return_url or charge.webhook_url},
        "reference": {
            "transaction": charge.payment_id,
            "order": charge.order_id,
            "idempotent": charge.payment_id,
        },
        "metadata": {"payment_id": charge.payment_id, "order_id": charge.order_id},
    }
    if charge.customer_phone:
        body["customer"]["phone"] = {"number": charge.customer_phone}
    return ProviderCall("POST", f"{api_base.rstrip('/')}/v2/charges", body, headers=_headers(creds))


def read_created(status: int, body: bytes) -> Created | Declined:
    if status not in (200, 201):
        return answer_outcome(status)
    doc = load_object(body)
    ref, url = text(doc, "id"), text(obj(doc, "transaction"), "url")
    if not ref or not url.startswith("https://"):
        return Declined("provider answered unexpectedly", False, status)
    return Created(ref, url)


def refund_call(
    api_base: str,
    creds: Mapping[str, str],
    charge_id: str,
    amount_minor: int,
    currency: str,
    refund_key: str,
) -> ProviderCall:
    body: dict[str, Any] = {
        "charge_id": charge_id,
        "amount": _major(amount_minor, currency),
        "currency": currency,
        "reason": "requested_by_customer",
        "reference": {"merchant": refund_key, "idempotent": refund_key},
    }
    return ProviderCall("POST", f"{api_base.rstrip('/')}/v2/refunds", body, headers=_headers(creds))


def read_refunded(status: int, body: bytes, amount_minor: int) -> Refunded | Declined:
    if status not in (200, 201):
        return answer_outcome(status)
    doc = load_object(body)
    ref = text(doc, "id")
    if not ref or text(doc, "status").upper() in _FAILED:
        return Declined("provider rejected the request", False, status)
    return Refunded(ref, amount_minor)


def _amount_text(doc: Mapping[str, Any], currency: str) -> str | None:
    raw = doc.get("amount")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        return format_major(to_minor(Decimal(str(raw)), currency), currency)
    except (InvalidOperation, ValueError):
        return None


def hash_string(doc: Mapping[str, Any], secret_key: str) -> str | None:
    """The ``hashstring`` Tap sends with this charge object (None: fields missing)."""
    currency = text(doc, "currency").upper()
    amount = _amount_text(doc, currency)
    if amount is None or not currency:
        return None
    reference = obj(doc, "reference")
    created = obj(doc, "transaction").get("created")
    message = (
        f"x_id{text(doc, 'id')}"
        f"x_amount{amount}"
        f"x_currency{currency}"
        f"x_gateway_reference{text(reference, 'gateway')}"
        f"x_payment_reference{text(reference, 'payment')}"
        f"x_status{text(doc, 'status')}"
        f"x_created{created if isinstance(created, str | int) else ''}"
    )
    return hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify(creds: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> bool:
    sent = headers.get(HASH_HEADER, "")
    secret = creds.get("secret_key", "")
    doc = load_object(body)
    if not sent or not secret or doc is None:
        return False
    expected = hash_string(doc, secret)
    return expected is not None and hmac.compare_digest(sent.encode(), expected.encode())


def parse(body: bytes) -> PaymentEvent | None:
    """A charge webhook: CAPTURED is paid, a terminal refusal is failed; a refund object
    (``charge_id`` set) that is REFUNDED refunds its charge. Other states are not acted on."""
    doc = load_object(body)
    if doc is None:
        return None
    tap_status = text(doc, "status").upper()
    object_id = text(doc, "id")
    charge_id = text(doc, "charge_id")
    if charge_id and tap_status == "REFUNDED":
        status, ref = REFUNDED, charge_id
    elif tap_status == "CAPTURED":
        status, ref = PAID, object_id
    elif tap_status in _FAILED:
        status, ref = FAILED, object_id
    else:
        return None
    currency = text(doc, "currency").upper()
    amount = _amount_text(doc, currency)
    if not object_id or amount is None:
        return None
    minor = to_minor(Decimal(amount), currency)
    metadata = {k: v for k, v in obj(doc, "metadata").items() if isinstance(v, str)}
    return PaymentEvent(
        provider=KIND,
        event_id=f"{object_id}:{tap_status}",
        status=status,
        provider_ref=ref,
        provider_payment_id=ref,
        amount_minor=minor,
        currency=currency,
        refund_minor=minor if status == REFUNDED else 0,
        refund_ref=object_id if status == REFUNDED else "",
        metadata=metadata,
    )
