"""Settlement arithmetic: over a generated month of ledger entries, in random zones and at
random hours, each day's settlement equals the sums of the entries in that local day, to the
halala, and the days together account for every entry of the month exactly once."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from engine.domain import settlement as st
from engine.domain.ledger import ledger_entry

ZONES = ("Asia/Riyadh", "UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Pacific/Apia")
MONTH_START = date(2026, 3, 1)  # holds the US and UK summer-time switches
DAYS = 31


def _month_entries(draw: Any, tz_name: str) -> list[dict[str, Any]]:
    tz = st.zone(tz_name)
    start, _ = st.window(MONTH_START, tz)
    _, end = st.window(MONTH_START + timedelta(days=DAYS - 1), tz)
    n = draw(hs.integers(min_value=0, max_value=60))
    out = []
    for i in range(n):
        kind = draw(hs.sampled_from(("capture", "capture", "capture", "refund", "chargeback")))
        out.append(
            ledger_entry(
                merchant_id="m1",
                provider="moyasar",
                provider_event_id=f"evt_{i}",
                kind=kind,
                amount_minor=draw(hs.integers(min_value=0, max_value=5_000_000)),
                fee_minor=draw(hs.integers(min_value=0, max_value=20_000)),
                # Whole and fractional seconds, the window's edges included.
                occurred_at=draw(
                    hs.one_of(
                        hs.floats(min_value=start, max_value=end, exclude_max=True),
                        hs.sampled_from([start, end - 0.001]),
                    )
                ),
                payment_id=f"pay_{i}",
            )
        )
    return out


@hs.composite
def months(draw: Any) -> tuple[str, list[dict[str, Any]]]:
    tz_name = draw(hs.sampled_from(ZONES))
    return tz_name, _month_entries(draw, tz_name)


@settings(max_examples=40, deadline=None)
@given(months())
def test_a_month_of_daily_settlements_equals_the_sums_of_the_entries(
    month: tuple[str, list[dict[str, Any]]],
) -> None:
    tz_name, entries = month
    tz = st.zone(tz_name)
    per_day = []
    seen = 0
    for d in range(DAYS):
        day = MONTH_START + timedelta(days=d)
        lo, hi = st.window(day, tz)
        mine = [e for e in entries if lo <= e["occurred_at"] < hi]
        seen += len(mine)
        t = st.totals(mine)
        cap = sum(e["amount_minor"] for e in mine if e["kind"] == "capture")
        ref = sum(e["amount_minor"] for e in mine if e["kind"] == "refund")
        cb = sum(e["amount_minor"] for e in mine if e["kind"] == "chargeback")
        fees = sum(e["fee_minor"] for e in mine)
        vat = (fees * 15 + 50) // 100  # 15 % of the fees, half-up to the halala
        assert (t.captured_minor, t.refunded_minor, t.chargebacks_minor) == (cap, ref, cb)
        assert (t.fees_minor, t.vat_minor) == (fees, vat)
        assert t.net_minor == cap - ref - cb - fees - vat
        assert t.entries == len(mine)
        # Every entry of the window is on that local calendar day.
        assert all(st.business_date(e["occurred_at"], tz) == day for e in mine)
        per_day.append(t)
    assert seen == len(entries)  # the windows tile the month: nothing twice, nothing left out
    whole = st.totals(entries)
    assert sum(t.captured_minor for t in per_day) == whole.captured_minor
    assert sum(t.refunded_minor for t in per_day) == whole.refunded_minor
    assert sum(t.chargebacks_minor for t in per_day) == whole.chargebacks_minor
    assert sum(t.fees_minor for t in per_day) == whole.fees_minor
    # VAT is rounded once per day, so the month's VAT is the sum of the days' roundings.
    assert sum(t.net_minor for t in per_day) == (
        whole.captured_minor
        - whole.refunded_minor
        - whole.chargebacks_minor
        - whole.fees_minor
        - sum(t.vat_minor for t in per_day)
    )


def test_vat_is_fifteen_percent_of_the_fees_rounded_half_up_once() -> None:
    assert st.vat_on(0) == 0
    assert st.vat_on(10) == 2  # 1.5 halalas -> 2
    assert st.vat_on(3) == 0  # 0.45 -> 0
    assert st.vat_on(7) == 1  # 1.05 -> 1
    assert st.vat_on(100) == 15
    # Three entries of 10 halalas of fees: once per settlement is 4.5 -> 5, not 3 x 2 = 6.
    t = st.totals(
        ledger_entry(
            merchant_id="m1",
            provider="tap",
            provider_event_id=f"e{i}",
            kind="capture",
            amount_minor=1000,
            fee_minor=10,
            occurred_at=0.0,
            payment_id=f"p{i}",
        )
        for i in range(3)
    )
    assert (t.fees_minor, t.vat_minor, t.net_minor) == (30, 5, 3000 - 30 - 5)


def test_a_riyadh_day_is_utc_21_to_21_and_is_due_after_its_last_minute() -> None:
    tz = st.zone(None)
    lo, hi = st.window(date(2026, 12, 2), tz)
    assert datetime.fromtimestamp(lo).astimezone(tz).isoformat() == "2026-12-02T00:00:00+03:00"
    assert hi - lo == 86400
    assert lo == datetime(2026, 12, 1, 21, 0, tzinfo=st.zone("UTC")).timestamp()
    assert st.last_due(hi - 30, tz) == date(2026, 12, 1)  # 23:59:30: the day is not over
    assert st.last_due(hi, tz) == date(2026, 12, 2)


def test_summer_time_days_are_23_and_25_hours() -> None:
    ny = st.zone("America/New_York")
    lo, hi = st.window(date(2026, 3, 8), ny)
    assert hi - lo == 23 * 3600
    lo, hi = st.window(date(2026, 11, 1), ny)
    assert hi - lo == 25 * 3600


def test_due_dates_catch_up_oldest_first_skip_settled_and_are_bounded() -> None:
    tz = st.zone("Asia/Riyadh")
    _, end_of_5th = st.window(date(2026, 12, 5), tz)
    now = end_of_5th + 60
    first = date(2026, 12, 1)
    assert st.due_dates(now, tz, first_day=first, settled=[], lookback_days=60, limit=10) == [
        date(2026, 12, d) for d in range(1, 6)
    ]
    settled = [date(2026, 12, 1), date(2026, 12, 2)]
    assert st.due_dates(now, tz, first_day=first, settled=settled, lookback_days=60, limit=10) == [
        date(2026, 12, d) for d in (3, 4, 5)
    ]
    assert st.due_dates(now, tz, first_day=first, settled=[], lookback_days=60, limit=2) == [
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]
    assert st.due_dates(now, tz, first_day=first, settled=[], lookback_days=2, limit=10) == [
        date(2026, 12, 4),
        date(2026, 12, 5),
    ]


def test_an_instant_a_hair_before_midnight_is_still_that_day() -> None:
    tz = st.zone("UTC")
    _, hi = st.window(date(2026, 3, 1), tz)
    just_before = math.nextafter(hi, 0.0)  # the last float before midnight
    assert just_before < hi and st.business_date(just_before, tz) == date(2026, 3, 1)
    assert st.business_date(hi, tz) == date(2026, 3, 2)


def test_dates_and_zones_are_checked() -> None:
    assert st.parse_date("2026-02-28") == date(2026, 2, 28)
    for bad in ("2026-02-30", "2026-2-1", "20260201", "2026-W05-1", "yesterday", ""):
        with pytest.raises(st.SettlementError):
            st.parse_date(bad)
    with pytest.raises(st.SettlementError):
        st.zone("Mars/Olympus")


def test_mixed_currencies_are_not_one_settlement() -> None:
    base = {"kind": "capture", "amount_minor": 1, "fee_minor": 0}
    t = st.totals([{**base, "currency": "SAR"}, {**base, "currency": "USD"}])
    assert t.error() == st.MIXED_CURRENCY
