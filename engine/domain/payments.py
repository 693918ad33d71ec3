"""Payments: what a provider's answer and webhook mean to us, in the provider's own units.

Amounts travel as integers in the currency's minor unit (halalas for SAR, fils for KWD): a
total computed from float prices is turned into minor units once, here, so the amount a
provider is asked for, the amount its webhook reports and the ledger's entry compare exactly.
A payment's status only moves forward (``initiated`` → ``paid`` → ``refunded``, or
``failed``), so a late or redelivered event can never undo a later one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

INITIATED: Final = "initiated"
PAID: Final = "paid"
FAILED: Final = "failed"
REFUNDED: Final = "refunded"
STATUSES: Final = (INITIATED, PAID, FAILED, REFUNDED)
# Which status may follow which: anything not listed is a stale or repeated event.
_NEXT: Final[dict[str, frozenset[str]]] = {
    INITIATED: frozenset({PAID, FAILED}),
    FAILED: frozenset({PAID}),  # a customer may retry the same link after a declined card
    PAID: frozenset({REFUNDED}),
    REFUNDED: frozenset(),
}

# ISO 4217 exponents that are not 2 (the providers' Gulf currencies and the zero-decimal ones).
_DECIMALS: Final = {"KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "IQD": 3, "TND": 3, "JPY": 0}
PROVIDERS: Final = ("moyasar", "tap")


class PaymentError(ValueError):
    """A payment that must not be made; the message is safe to show a merchant."""


def decimals(currency: str) -> int:
    return _DECIMALS.get(currency.upper(), 2)


def to_minor(amount: float | int | str | Decimal, currency: str) -> int:
    """``amount`` (major units, as prices are stored) in the currency's minor unit."""
    exp = decimals(currency)
    value = Decimal(str(amount)).scaleb(exp).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(value)


def format_major(amount_minor: int, currency: str) -> str:
    """Minor units as the provider writes the major amount (``"10.50"``, ``"1.250"``)."""
    exp = decimals(currency)
    value = Decimal(amount_minor).scaleb(-exp)
    return f"{value:.{exp}f}"


def may_become(current: str, new: str) -> bool:
    return new in _NEXT.get(current, frozenset())


def refund_step(
    paid_minor: int, already_refunded: int, *, refunded_total: int, refund_minor: int
) -> tuple[int, int] | None:
    """What one refund event adds: (this refund's amount, the refunded total after it), or
    None when it adds nothing — a total the payment has already reached (the refund API wrote
    it first, or an older event arrived late). Never more than what was paid."""
    amount = refund_minor if refund_minor > 0 else refunded_total - already_refunded
    amount = min(amount, paid_minor - already_refunded)
    if amount <= 0:
        return None
    return amount, already_refunded + amount


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One provider webhook, verified and read: what happened to which provider object.

    ``event_id`` is what the provider redelivers unchanged, so it names the event's record
    and every effect it has (ledger entry, customer message)."""

    provider: str
    event_id: str
    status: str  # one of STATUSES
    provider_ref: str  # the invoice (Moyasar) or charge (Tap) the payment was created as
    provider_payment_id: str  # what a refund is made against
    amount_minor: int
    currency: str
    fee_minor: int = 0
    # A refund event says either the payment's refunded total (Moyasar sends the payment) or
    # the size of one refund (Tap sends the refund object): ``refund_minor`` is set only then.
    refunded_minor: int = 0
    refund_minor: int = 0
    refund_ref: str = ""  # names the refund as the refund API's answer does (its ledger entry)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Created:
    """A provider accepted a payment: where the customer pays and what it is called there."""

    provider_ref: str
    url: str


@dataclass(frozen=True, slots=True)
class Refunded:
    """A provider accepted a refund; ``refund_ref`` names it (the ledger entry's event)."""

    refund_ref: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Declined:
    """A provider said no (or could not be understood). ``retryable``: the same request may
    succeed later (5xx, 429, network); ``reason`` is one of our fixed phrases, never the
    provider's words."""

    reason: str
    retryable: bool
    status: int = 0


@dataclass(frozen=True, slots=True)
class Charge:
    """What a provider is asked to collect (the order's total, never a client's number)."""

    payment_id: str
    order_id: str
    amount_minor: int
    currency: str
    description: str
    webhook_url: str
    customer_name: str = ""
    customer_phone: str = ""
    return_url: str = ""


def answer_outcome(status: int) -> Declined:
    """Our fixed reading of a provider's refusal by HTTP status."""
    if status in (401, 403):
        return Declined("provider refused the credentials", False, status)
    if status in (400, 404, 422):
        return Declined("provider rejected the request", False, status)
    if status == 429 or status >= 500:
        return Declined("provider unavailable", True, status)
    return Declined("provider answered unexpectedly", False, status)
