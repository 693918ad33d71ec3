"""Daily settlement of each merchant's ledger: the scheduled run, the manual trigger, retries.

Exactly once, across restarts and replicas, by two guards. A Redis lease per (merchant, date)
keeps two replicas from computing the same date at once (cheap, but a lease can expire under a
stalled holder). The record's key ``f"{merchant}:{date}"`` with insert-if-absent is the real
guard: whoever computes, only the first insert is kept, and the loser answers with the record
that won. Nothing is written before the figures are known, so a crash mid-run leaves no
half-done record to unstick: the date is simply still due on the next run.

Catch-up: each run settles every due date since the merchant's first day (within a look-back)
that has no record, oldest first and a bounded number per run, so an engine that was down three
days writes those three settlements on its next run and the next runs write the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from engine.domain import settlement as st
from engine.services.ports import Document, SettlementLeases
from engine.services.repositories import Keyset, Page, Repositories
from observability import metrics

log = logging.getLogger(__name__)

# Ledger entries read per round trip while summing a day.
_LEDGER_PAGE: Final = 1000
# Merchants read per round trip while the scheduled run walks all of them.
_MERCHANT_PAGE: Final = 200
MAX_SUMMARY_DAYS: Final = 366

Outcome = Literal["created", "existing", "retried", "busy"]


@dataclass(frozen=True, slots=True)
class SettlementPolicy:
    """Bounds of the scheduled run (``Settings.settlement_*``)."""

    lookback_days: int = 62
    max_dates_per_run: int = 31
    lease_ms: int = 120_000
    max_entries: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Settled:
    record: Document | None
    outcome: Outcome


class NotSettleable(st.SettlementError):
    """A date that cannot be settled yet (in the future, or its day is not over)."""


class NotRetryable(st.SettlementError):
    """A retry of a date whose settlement did not fail; ``record`` is what it has (if any)."""

    def __init__(self, message: str, record: Document | None) -> None:
        super().__init__(message)
        self.record = record


def timezone_name(merchant: Document | None) -> str:
    """The merchant's settlement zone: its own ``timezone``, else its business hours' zone,
    else Asia/Riyadh."""
    m = merchant or {}
    hours = m.get("business_hours") or {}
    return str(m.get("timezone") or hours.get("timezone") or st.DEFAULT_TIMEZONE)


class Settlements:
    def __init__(
        self,
        repos: Repositories,
        leases: SettlementLeases,
        *,
        policy: SettlementPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repos = repos
        self._leases = leases
        self._policy = policy or SettlementPolicy()
        self._clock = clock

    # -- one date ---------------------------------------------------------------------------
    async def settle(self, merchant_id: str, day: date, *, retry: bool = False) -> Settled:
        """Settle ``day`` once. An existing record is returned as it is (a trigger never
        makes a second); ``retry`` re-runs a ``failed`` one and refuses anything else."""
        merchant = await self._repos.merchants.get(merchant_id)
        tz_name = timezone_name(merchant)
        tz = st.zone(tz_name)
        now = self._clock()
        if day > st.last_due(now, tz):
            raise NotSettleable("that day is not over yet in the merchant's time zone")
        existing = await self._repos.settlements.get(merchant_id, day.isoformat())
        if retry and (existing is None or existing["status"] != st.FAILED):
            what = "has no settlement" if existing is None else "did not fail"
            raise NotRetryable(f"that date {what}; only a failed settlement is retried", existing)
        if existing is not None and not retry:
            return Settled(existing, "existing")
        token = await self._leases.acquire(merchant_id, day.isoformat(), self._policy.lease_ms)
        if token is None:
            return Settled(existing, "busy")
        try:
            return await self._compute_and_store(merchant_id, day, tz_name, tz, existing)
        finally:
            await self._leases.release(merchant_id, day.isoformat(), token)

    async def _compute_and_store(
        self, merchant_id: str, day: date, tz_name: str, tz: ZoneInfo, existing: Document | None
    ) -> Settled:
        bounds = st.window(day, tz)
        sums, error = await self._sum(merchant_id, bounds)
        at = self._clock()
        attempts = int(existing.get("attempts") or 1) + 1 if existing else 1
        doc = st.settlement_record(
            merchant_id,
            day,
            tz_name,
            bounds,
            None if error else sums,
            error=error,
            at=at,
            attempts=attempts,
        )
        if existing is not None:  # a retry of a failed date
            changes = {k: v for k, v in doc.items() if k not in ("_id", "created_at")}
            stored = await self._repos.settlements.replace_failed(
                merchant_id, day.isoformat(), changes
            )
            if stored is None:  # another replica's retry won
                return Settled(
                    await self._repos.settlements.get(merchant_id, day.isoformat()), "existing"
                )
            self._count(stored)
            return Settled(stored, "retried")
        if not await self._repos.settlements.insert(doc):
            return Settled(
                await self._repos.settlements.get(merchant_id, day.isoformat()), "existing"
            )
        self._count(doc)
        return Settled(doc, "created")

    async def _sum(
        self, merchant_id: str, bounds: tuple[float, float]
    ) -> tuple[st.Totals, str | None]:
        sums = st.Totals()
        after: Keyset | None = None
        try:
            while True:
                page = await self._repos.ledger.between(
                    merchant_id, bounds[0], bounds[1], limit=_LEDGER_PAGE, after=after
                )
                for entry in page.items:
                    sums.add(entry)
                if sums.entries > self._policy.max_entries:
                    return sums, st.TOO_MANY_ENTRIES
                if page.after is None:
                    return sums, sums.error()
                after = page.after
        except st.SettlementError:
            raise
        except Exception:
            log.exception("settlement could not read the ledger of %s", merchant_id)
            return sums, st.LEDGER_UNAVAILABLE

    @staticmethod
    def _count(doc: Document) -> None:
        metrics.SETTLEMENTS.labels(doc["status"]).inc()
        if doc["status"] == st.COMPLETED:
            metrics.SETTLEMENT_LAST_SUCCESS.set(float(doc["settled_at"]))

    # -- the scheduled run ------------------------------------------------------------------
    async def settle_due(self, merchant: Document, now: float | None = None) -> list[Settled]:
        """Every due, unsettled date of one merchant (oldest first, bounded per run)."""
        now = self._clock() if now is None else now
        merchant_id = str(merchant["_id"])
        tz = st.zone(timezone_name(merchant))
        p = self._policy
        newest = st.last_due(now, tz)
        oldest = newest - timedelta(days=max(0, p.lookback_days - 1))
        created = merchant.get("created_at")
        first_day = st.business_date(float(created), tz) if created is not None else oldest
        records = await self._repos.settlements.between(
            merchant_id,
            max(first_day, oldest).isoformat(),
            newest.isoformat(),
            limit=p.lookback_days,
        )
        dates = st.due_dates(
            now,
            tz,
            first_day=first_day,
            settled=(date.fromisoformat(r["date"]) for r in records),
            lookback_days=p.lookback_days,
            limit=p.max_dates_per_run,
        )
        return [await self.settle(merchant_id, d) for d in dates]

    async def run_once(self, now: float | None = None) -> int:
        """One scheduled pass over every merchant; the number of settlements written. One
        merchant's bad data (an unknown zone) does not stop the others'."""
        written = 0
        after: Keyset | None = None
        while True:
            page = await self._repos.merchants.page(limit=_MERCHANT_PAGE, after=after)
            for merchant in page.items:
                try:
                    done = await self.settle_due(merchant, now)
                except st.SettlementError:
                    log.warning("merchant %s cannot be settled: bad time zone", merchant["_id"])
                    continue
                written += sum(1 for s in done if s.outcome == "created")
            if page.after is None:
                return written
            after = page.after

    # -- reads ------------------------------------------------------------------------------
    async def latest_due(self, merchant_id: str) -> date:
        """The most recent date that may be settled now (what a bare trigger settles)."""
        tz = st.zone(timezone_name(await self._repos.merchants.get(merchant_id)))
        return st.last_due(self._clock(), tz)

    async def history(self, merchant_id: str, *, limit: int, after: Keyset | None) -> Page:
        return await self._repos.settlements.page(merchant_id, limit=limit, after=after)

    async def get(self, merchant_id: str, day: date) -> Document | None:
        return await self._repos.settlements.get(merchant_id, day.isoformat())

    async def summary(self, merchant_id: str, days: int) -> dict[str, Any]:
        """Totals of the completed settlements of the last ``days`` due dates."""
        days = max(1, min(days, MAX_SUMMARY_DAYS))
        tz = st.zone(timezone_name(await self._repos.merchants.get(merchant_id)))
        last = st.last_due(self._clock(), tz)
        first = last - timedelta(days=days - 1)
        records = await self._repos.settlements.between(
            merchant_id, first.isoformat(), last.isoformat(), limit=days
        )
        done = [r for r in records if r["status"] == st.COMPLETED]
        fields = (
            "gross_captured_minor",
            "refunded_minor",
            "chargebacks_minor",
            "fees_minor",
            "vat_minor",
            "net_minor",
        )
        out: dict[str, Any] = {
            "days": days,
            "from": first.isoformat(),
            "to": last.isoformat(),
            "settlements": len(records),
            "completed": len(done),
            "failed": sum(1 for r in records if r["status"] == st.FAILED),
            "currency": done[0]["currency"] if done else "SAR",
        }
        for f in fields:
            out[f] = sum(int(r[f]) for r in done)
        out["entries"] = sum(int(r["entries"]) for r in done)
        return out
