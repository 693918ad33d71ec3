"""Daily settlement: what a merchant is owed for one business day, from the money ledger.

A business day is the merchant's local calendar day, [00:00, next 00:00) in its time zone
(default Asia/Riyadh), as UTC epoch seconds: a day of 23 or 25 hours where the zone has summer
time is still one day. The day's settlement is due at 23:59 local; it is computed once the
day's window has closed (the next local midnight), so a capture in the day's last minute is in
it and a run at 23:59:30 cannot write a settlement that misses it.

The formula, in integers of the currency's minor unit (halalas for SAR) only:

    net = captured − refunded − chargebacks − fees − VAT

where ``fees`` is the sum of ``fee_minor`` of every entry of the day (what the provider kept),
and VAT is charged on the provider's fees, not on the gross: the gross is the merchant's own
sales, whose output VAT the merchant declares itself; what the provider bills the merchant in
the settlement is its fee, and KSA VAT (15 %) applies to that service. VAT is rounded half-up
to the halala ONCE per settlement, on the day's total fees, so the settlement equals the sums
of its entries exactly and no per-entry rounding drifts across a busy day.

Nothing here does I/O: the clock, the ledger and the zone name are handed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.domain.ledger import CAPTURE, CHARGEBACK, REFUND

DEFAULT_TIMEZONE: Final = "Asia/Riyadh"
# KSA VAT in basis points (15 %), charged on the provider's fees.
VAT_RATE_BP: Final = 1500
CUTOFF: Final = time(23, 59)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

COMPLETED: Final = "completed"
FAILED: Final = "failed"
# Why a settlement failed; a fixed set, safe to show the merchant and to put in a metric label.
MIXED_CURRENCY: Final = "mixed_currency"
LEDGER_UNAVAILABLE: Final = "ledger_unavailable"
TOO_MANY_ENTRIES: Final = "too_many_entries"
ERROR_CODES: Final = (MIXED_CURRENCY, LEDGER_UNAVAILABLE, TOO_MANY_ENTRIES)


class SettlementError(ValueError):
    """A date or zone that cannot be settled; the message is safe to show a merchant."""


def zone(name: str | None) -> ZoneInfo:
    """The merchant's zone; the default when it has none. An unknown name is an error (a
    typo must not silently settle on Riyadh's days)."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettlementError(f"unknown time zone {name!r}") from exc


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` only (no week dates or ordinals ``date.fromisoformat`` also takes)."""
    if not _DATE.match(text):
        raise SettlementError("date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise SettlementError("date must be a real calendar date (YYYY-MM-DD)") from exc


def _epoch(day: date, at: time, tz: ZoneInfo) -> float:
    return datetime.combine(day, at, tzinfo=tz).timestamp()


def window(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """[local 00:00 of ``day``, local 00:00 of the next day) as UTC epoch seconds."""
    return _epoch(day, time(0, 0), tz), _epoch(day + timedelta(days=1), time(0, 0), tz)


def business_date(at: float, tz: ZoneInfo) -> date:
    """The local calendar day an instant falls on. Floored to the second first: ``fromtimestamp``
    rounds to the microsecond, which would put 23:59:59.9999999 on the next day, while day
    boundaries are whole seconds, so flooring never changes the day."""
    return datetime.fromtimestamp(math.floor(at), tz=UTC).astimezone(tz).date()


def due_at(day: date, tz: ZoneInfo) -> float:
    """When ``day`` may be settled: its 23:59 local cutoff, and not before its window has
    closed (see the module's docstring)."""
    return max(_epoch(day, CUTOFF, tz), window(day, tz)[1])


def last_due(now: float, tz: ZoneInfo) -> date:
    """The latest date that is due at ``now``."""
    day = business_date(now, tz)
    while due_at(day, tz) > now:
        day -= timedelta(days=1)
    return day


def due_dates(
    now: float,
    tz: ZoneInfo,
    *,
    first_day: date,
    settled: Iterable[date],
    lookback_days: int,
    limit: int,
) -> list[date]:
    """The dates to settle at ``now``, oldest first: every due date since the merchant's first
    day (and within ``lookback_days`` of the last due one) that has no settlement yet, at most
    ``limit`` of them. An engine that was down three days finds those three days here on its
    next run; ``limit`` bounds one run's work and the rest follow on the next runs."""
    newest = last_due(now, tz)
    oldest = max(first_day, newest - timedelta(days=max(0, lookback_days - 1)))
    done = set(settled)
    out: list[date] = []
    day = oldest
    while day <= newest and len(out) < limit:
        if day not in done:
            out.append(day)
        day += timedelta(days=1)
    return out


def vat_on(fees_minor: int, rate_bp: int = VAT_RATE_BP) -> int:
    """VAT on an amount of minor units, rounded half-up to the minor unit."""
    return (fees_minor * rate_bp + 5000) // 10_000


@dataclass(slots=True)
class Totals:
    """A day's sums, built entry by entry (the ledger is read in pages)."""

    currency: str | None = None
    entries: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    chargebacks_minor: int = 0
    fees_minor: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {CAPTURE: 0, REFUND: 0, CHARGEBACK: 0})
    currencies: set[str] = field(default_factory=set)

    def add(self, entry: Mapping[str, Any]) -> None:
        kind = entry["kind"]
        amount = int(entry["amount_minor"])
        if kind == CAPTURE:
            self.captured_minor += amount
        elif kind == REFUND:
            self.refunded_minor += amount
        elif kind == CHARGEBACK:
            self.chargebacks_minor += amount
        else:  # entries are validated when written; an unknown kind is not money we know
            raise SettlementError(f"unknown ledger entry kind {kind!r}")
        self.fees_minor += int(entry.get("fee_minor") or 0)
        self.counts[kind] += 1
        self.entries += 1
        self.currencies.add(str(entry.get("currency") or "SAR"))

    @property
    def vat_minor(self) -> int:
        return vat_on(self.fees_minor)

    @property
    def net_minor(self) -> int:
        return (
            self.captured_minor
            - self.refunded_minor
            - self.chargebacks_minor
            - self.fees_minor
            - self.vat_minor
        )

    def error(self) -> str | None:
        """Why these sums cannot be one settlement (None: they can)."""
        return MIXED_CURRENCY if len(self.currencies) > 1 else None

    def figures(self, default_currency: str = "SAR") -> dict[str, Any]:
        """The settlement record's money fields."""
        return {
            "currency": next(iter(self.currencies), default_currency),
            "entries": self.entries,
            "captures": self.counts[CAPTURE],
            "refunds": self.counts[REFUND],
            "chargebacks": self.counts[CHARGEBACK],
            "gross_captured_minor": self.captured_minor,
            "refunded_minor": self.refunded_minor,
            "chargebacks_minor": self.chargebacks_minor,
            "fees_minor": self.fees_minor,
            "vat_minor": self.vat_minor,
            "vat_rate_bp": VAT_RATE_BP,
            "net_minor": self.net_minor,
        }


def totals(entries: Iterable[Mapping[str, Any]]) -> Totals:
    t = Totals()
    for e in entries:
        t.add(e)
    return t


def settlement_id(merchant_id: str, day: date) -> str:
    """One settlement per (merchant, date): the record's key is the guard against twins."""
    return f"{merchant_id}:{day.isoformat()}"


def settlement_record(
    merchant_id: str,
    day: date,
    tz_name: str,
    bounds: tuple[float, float],
    sums: Totals | None,
    *,
    error: str | None,
    at: float,
    attempts: int = 1,
) -> dict[str, Any]:
    """The stored settlement: ``completed`` with its figures, or ``failed`` with its code."""
    doc: dict[str, Any] = {
        "_id": settlement_id(merchant_id, day),
        "merchant_id": merchant_id,
        "date": day.isoformat(),
        "timezone": tz_name,
        "window_start": bounds[0],
        "window_end": bounds[1],
        "status": FAILED if error else COMPLETED,
        "error": error,
        "attempts": attempts,
        "created_at": at,
        "settled_at": None if error else at,
    }
    doc.update((sums or Totals()).figures())
    return doc
