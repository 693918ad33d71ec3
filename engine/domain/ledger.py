"""The money ledger: every movement of a merchant's money, one immutable entry each.

Why a ledger and not payment records' statuses: a payment's status says where it ended, not
when its money moved. A settlement for a day must sum what moved that day (a payment captured
on the 3rd and refunded on the 9th settles +amount on the 3rd and −amount on the 9th), and it
must give the same answer when it runs again next month. Entries are never changed; each is
named by the provider event that caused it, so a redelivered webhook or a replayed request
cannot count money twice. Amounts are integers in the currency's minor unit (halalas for SAR)
so sums are exact.
"""

from __future__ import annotations

from typing import Any, Final

CAPTURE: Final = "capture"
REFUND: Final = "refund"
CHARGEBACK: Final = "chargeback"
KINDS: Final = (CAPTURE, REFUND, CHARGEBACK)
# Bounded ids: they become record keys; provider ids are far shorter.
_MAX_ID_CHARS: Final = 200


class LedgerError(ValueError):
    """An entry that must not be written; the message is safe to show a merchant."""


def entry_id(provider: str, provider_event_id: str, kind: str) -> str:
    """The entry's key: one per (provider event, kind), whoever records it and how often."""
    return f"{provider}:{provider_event_id}:{kind}"


def ledger_entry(
    *,
    merchant_id: str,
    provider: str,
    provider_event_id: str,
    kind: str,
    amount_minor: int,
    fee_minor: int,
    occurred_at: float,
    payment_id: str,
    order_id: str | None = None,
    currency: str = "SAR",
) -> dict[str, Any]:
    """One validated entry. ``amount_minor`` is the size of the movement (positive for every
    kind: the kind says which way it goes); ``fee_minor`` is what the provider kept for it."""
    if kind not in KINDS:
        raise LedgerError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    for name, value in (("amount_minor", amount_minor), ("fee_minor", fee_minor)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LedgerError(f"{name} must be a non-negative integer, got {value!r}")
    for name, text in (
        ("merchant_id", merchant_id),
        ("provider", provider),
        ("provider_event_id", provider_event_id),
        ("payment_id", payment_id),
    ):
        if not text or len(text) > _MAX_ID_CHARS:
            raise LedgerError(f"{name} must be 1..{_MAX_ID_CHARS} characters")
    return {
        "_id": entry_id(provider, provider_event_id, kind),
        "merchant_id": merchant_id,
        "provider": provider,
        "provider_event_id": provider_event_id,
        "kind": kind,
        "amount_minor": amount_minor,
        "fee_minor": fee_minor,
        "currency": currency,
        "occurred_at": float(occurred_at),
        "payment_id": payment_id,
        "order_id": order_id,
    }
