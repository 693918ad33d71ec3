"""A ledger entry is exact money named by its provider event, or it is refused."""

from __future__ import annotations

import pytest

from engine.domain.ledger import LedgerError, entry_id, ledger_entry

_BASE = {
    "merchant_id": "m1",
    "provider": "tap",
    "provider_event_id": "chg_1",
    "kind": "refund",
    "amount_minor": 1500,
    "fee_minor": 0,
    "occurred_at": 10,
    "payment_id": "pay_1",
}


def test_an_entry_is_named_by_its_provider_event_and_kind() -> None:
    e = ledger_entry(**_BASE)  # type: ignore[arg-type]
    assert e["_id"] == entry_id("tap", "chg_1", "refund") == "tap:chg_1:refund"
    assert (e["amount_minor"], e["occurred_at"], e["currency"]) == (1500, 10.0, "SAR")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "gift"),
        ("amount_minor", -1),
        ("amount_minor", 1.5),
        ("amount_minor", True),
        ("fee_minor", -3),
        ("provider_event_id", ""),
        ("payment_id", "x" * 201),
    ],
)
def test_bad_entries_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(LedgerError, match=field if field != "amount_minor" else "amount"):
        ledger_entry(**{**_BASE, field: value})  # type: ignore[arg-type]
