"""The settlement use case on the real SQLite store and a real Redis: catch-up after downtime,
exactly one record per date when runners race, failed dates kept with their code and retried."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.adapters.redis.leases import RedisSettlementLeases
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.repositories import sqlite_repositories
from engine.config import ConfigError, Settings
from engine.domain import settlement as st
from engine.domain.ledger import ledger_entry
from engine.services.repositories import Keyset, Page, Repositories
from engine.services.settlement import NotRetryable, NotSettleable, Settlements
from observability import metrics

RIYADH = st.zone("Asia/Riyadh")
FIRST = date(2026, 11, 1)


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def repos(tmp_path: Path) -> AsyncIterator[Repositories]:
    r = sqlite_repositories(tmp_path / "records.sqlite3")
    await r.ensure_indexes()
    yield r
    await r.close()


def _at(day: date, hour: int) -> float:
    return st.window(day, RIYADH)[0] + hour * 3600 + 17.25


async def _merchant(repos: Repositories, merchant_id: str = "m1", **extra: Any) -> None:
    created = st.window(FIRST, RIYADH)[0] + 3600
    await repos.merchants.create(
        {
            "_id": merchant_id,
            "name": "Shop",
            "api_key_hash": f"h-{merchant_id}",
            "created_at": created,
            **extra,
        }
    )


async def _pay(
    repos: Repositories, n: int, day: date, hour: int, kind: str = "capture", **kw: Any
) -> None:
    entry = ledger_entry(
        merchant_id=kw.pop("merchant_id", "m1"),
        provider="moyasar",
        provider_event_id=f"evt_{n}",
        kind=kind,
        amount_minor=kw.pop("amount_minor", 10_000 + n),
        fee_minor=kw.pop("fee_minor", 230 + n),
        occurred_at=_at(day, hour),
        payment_id=f"pay_{n}",
        **kw,
    )
    assert await repos.ledger.record(entry)


def _end_of(day: date) -> float:
    return st.window(day, RIYADH)[1]


def _counter(outcome: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("kaleem_settlements_total", {"outcome": outcome}) or 0.0
    )


async def test_three_days_of_downtime_are_settled_on_the_next_run_and_never_twice(
    repos: Repositories, redis: aioredis.Redis
) -> None:
    await _merchant(repos)
    days = [FIRST + timedelta(days=i) for i in range(3)]
    for i, d in enumerate(days):
        await _pay(repos, 10 * i, d, 1)
        await _pay(repos, 10 * i + 1, d, 23)  # the day's last hour
        await _pay(repos, 10 * i + 2, d, 12, kind="refund", amount_minor=500, fee_minor=0)
    now = _end_of(days[-1]) + 120  # the engine comes back two minutes after the 3rd's end
    before = _counter("completed")
    svc = Settlements(repos, RedisSettlementLeases(redis), clock=lambda: now)
    assert await svc.run_once() == 3
    assert await svc.run_once() == 0  # the next run finds nothing left to do
    assert _counter("completed") - before == 3
    history = await svc.history("m1", limit=10, after=None)
    assert [h["date"] for h in history.items] == [d.isoformat() for d in reversed(days)]
    for i, d in enumerate(days):
        doc = await svc.get("m1", d)
        assert doc is not None and doc["status"] == "completed"
        captured = (10_000 + 10 * i) + (10_000 + 10 * i + 1)
        fees = (230 + 10 * i) + (230 + 10 * i + 1)
        vat = (fees * 15 + 50) // 100
        assert doc["gross_captured_minor"] == captured and doc["refunded_minor"] == 500
        assert (doc["fees_minor"], doc["vat_minor"]) == (fees, vat)
        assert doc["net_minor"] == captured - 500 - fees - vat
        assert doc["entries"] == 3 and doc["timezone"] == "Asia/Riyadh"
    assert metrics.REGISTRY.get_sample_value(
        "kaleem_settlement_last_success_timestamp_seconds"
    ) == pytest.approx(now)


async def test_two_runners_racing_on_the_same_store_and_redis_write_each_date_once(
    tmp_path: Path, repos: Repositories, redis_url: str
) -> None:
    await _merchant(repos)
    await _merchant(repos, "m2", timezone="Europe/London")
    for i in range(4):
        await _pay(repos, i, FIRST + timedelta(days=i), 10)
    now = _end_of(FIRST + timedelta(days=3)) + 5
    # Two engines: each its own connection to the records file and to Redis.
    other = sqlite_repositories(tmp_path / "records.sqlite3")
    clients = [redis_client(redis_url), redis_client(redis_url)]
    try:
        a = Settlements(repos, RedisSettlementLeases(clients[0]), clock=lambda: now)
        b = Settlements(other, RedisSettlementLeases(clients[1]), clock=lambda: now)
        written = await asyncio.gather(*(r.run_once() for r in (a, b, a, b)))
        london_days = len(
            st.due_dates(
                now,
                st.zone("Europe/London"),
                first_day=FIRST - timedelta(days=1),  # created 01:00 Riyadh: the 31st in London
                settled=[],
                lookback_days=62,
                limit=31,
            )
        )
        assert london_days == 4
        assert sum(written) == 4 + london_days  # m1's four days and m2's, each written once
        for merchant in ("m1", "m2"):
            page = await repos.settlements.page(merchant, limit=50, after=None)
            dates = [d["date"] for d in page.items]
            assert len(dates) == len(set(dates))
        assert len((await repos.settlements.page("m1", limit=50, after=None)).items) == 4
    finally:
        for c in clients:
            await c.aclose()
        await other.close()


class _AlwaysGranted:
    """Leases that never refuse: what two replicas see when a lease expired under a stalled
    holder. The record's key alone must then keep the date single."""

    async def acquire(self, merchant_id: str, date: str, ttl_ms: int) -> str | None:
        return "t"

    async def release(self, merchant_id: str, date: str, token: str) -> None:
        return None


async def test_without_the_lease_the_record_key_still_keeps_one_settlement_per_date(
    repos: Repositories,
) -> None:
    await _merchant(repos)
    await _pay(repos, 1, FIRST, 9)
    now = _end_of(FIRST) + 1
    runners = [Settlements(repos, _AlwaysGranted(), clock=lambda: now) for _ in range(4)]
    results = await asyncio.gather(*(r.settle("m1", FIRST) for r in runners))
    assert sorted(r.outcome for r in results) == ["created", "existing", "existing", "existing"]
    assert {r.record["net_minor"] for r in results if r.record} == {results[0].record["net_minor"]}  # type: ignore[index]
    assert len((await repos.settlements.page("m1", limit=10, after=None)).items) == 1


class _LedgerDown:
    """The ledger's database answering errors (an outage), at the repository boundary."""

    async def record(self, entry: Any) -> bool:
        raise ConnectionError("database down")

    async def between(
        self, merchant_id: str, start: float, end: float, *, limit: int, after: Keyset | None
    ) -> Page:
        raise ConnectionError("database down")


async def test_a_failed_date_keeps_its_code_is_not_redone_by_a_trigger_and_is_retried(
    repos: Repositories, redis: aioredis.Redis
) -> None:
    await _merchant(repos)
    await _pay(repos, 1, FIRST, 9, amount_minor=7000, fee_minor=100)
    now = _end_of(FIRST) + 1
    down = Settlements(
        dataclasses.replace(repos, ledger=_LedgerDown()),
        RedisSettlementLeases(redis),
        clock=lambda: now,
    )
    failed_before = _counter("failed")
    first = await down.settle("m1", FIRST)
    assert first.outcome == "created" and first.record is not None
    assert first.record["status"] == "failed" and first.record["error"] == "ledger_unavailable"
    assert first.record["net_minor"] == 0 and first.record["settled_at"] is None
    assert _counter("failed") - failed_before == 1

    svc = Settlements(repos, RedisSettlementLeases(redis), clock=lambda: now)
    again = await svc.settle("m1", FIRST)  # a trigger answers the record it has
    assert again.outcome == "existing" and again.record is not None
    assert again.record["status"] == "failed"
    assert await svc.run_once() == 0  # the schedule leaves a failed date to the retry
    retried = await svc.settle("m1", FIRST, retry=True)
    assert retried.outcome == "retried" and retried.record is not None
    assert retried.record["status"] == "completed" and retried.record["error"] is None
    assert retried.record["net_minor"] == 7000 - 100 - 15 and retried.record["attempts"] == 2
    with pytest.raises(NotRetryable):  # completed now: nothing to retry
        await svc.settle("m1", FIRST, retry=True)
    with pytest.raises(NotRetryable):  # never ran
        await svc.settle("m1", FIRST - timedelta(days=1), retry=True)


async def test_mixed_currencies_fail_the_date_and_today_is_not_settleable(
    repos: Repositories, redis: aioredis.Redis
) -> None:
    await _merchant(repos)
    await _pay(repos, 1, FIRST, 9)
    await _pay(repos, 2, FIRST, 10, currency="USD")
    now = _end_of(FIRST) + 1
    svc = Settlements(repos, RedisSettlementLeases(redis), clock=lambda: now)
    done = await svc.settle("m1", FIRST)
    assert done.record is not None and done.record["error"] == "mixed_currency"
    with pytest.raises(NotSettleable):
        await svc.settle("m1", FIRST + timedelta(days=1))  # its day is not over at ``now``


async def test_a_held_lease_makes_the_other_replica_step_aside(
    repos: Repositories, redis: aioredis.Redis
) -> None:
    await _merchant(repos)
    now = _end_of(FIRST) + 1
    leases = RedisSettlementLeases(redis)
    token = await leases.acquire("m1", FIRST.isoformat(), 60_000)
    assert token is not None
    assert await leases.acquire("m1", FIRST.isoformat(), 60_000) is None
    svc = Settlements(repos, leases, clock=lambda: now)
    assert (await svc.settle("m1", FIRST)).outcome == "busy"
    await leases.release("m1", FIRST.isoformat(), "not-the-token")  # not the holder: kept
    assert (await svc.settle("m1", FIRST)).outcome == "busy"
    await leases.release("m1", FIRST.isoformat(), token)
    assert (await svc.settle("m1", FIRST)).outcome == "created"


async def test_a_generated_month_settled_by_the_schedule_equals_the_sums_of_its_payments(
    repos: Repositories, redis: aioredis.Redis
) -> None:
    """Through the store and the scheduled run: 30 days of payments at random hours for
    merchants in three zones; every stored settlement equals the sums of its local day's
    entries to the halala, and the month's settlements add up to all of its entries."""
    rng = random.Random(20261203)
    zones = {"m-ruh": "Asia/Riyadh", "m-nyc": "America/New_York", "m-del": "Asia/Kolkata"}
    month = [date(2026, 10, 15) + timedelta(days=d) for d in range(30)]  # spans the US switch
    entries: dict[str, list[dict[str, Any]]] = {m: [] for m in zones}
    for merchant, zone_name in zones.items():
        tz = st.zone(zone_name)
        created = st.window(month[0], tz)[0]
        await repos.merchants.create(
            {
                "_id": merchant,
                "name": merchant,
                "api_key_hash": merchant,
                "created_at": created,
                "timezone": zone_name,
            }
        )
        start, end = created, st.window(month[-1], tz)[1]
        for n in range(rng.randint(150, 250)):
            kind = rng.choice(("capture", "capture", "capture", "refund", "chargeback"))
            entry = ledger_entry(
                merchant_id=merchant,
                provider=rng.choice(("moyasar", "tap")),
                provider_event_id=f"{merchant}-{n}",
                kind=kind,
                amount_minor=rng.randint(1, 2_000_000),
                fee_minor=rng.randint(0, 9_999),
                occurred_at=rng.uniform(start, end),
                payment_id=f"pay-{n}",
            )
            assert await repos.ledger.record(entry)
            entries[merchant].append(entry)
    # The day after the month, every merchant's month is due; one run per 31 dates.
    now = max(st.window(month[-1], st.zone(z))[1] for z in zones.values()) + 60
    svc = Settlements(repos, RedisSettlementLeases(redis), clock=lambda: now)
    assert await svc.run_once() >= 90
    for merchant, zone_name in zones.items():
        tz = st.zone(zone_name)
        stored = {
            d["date"]: d
            for d in (await repos.settlements.page(merchant, limit=99, after=None)).items
        }
        assert set(stored) >= {d.isoformat() for d in month}
        total_net = 0
        for day in month:
            lo, hi = st.window(day, tz)
            mine = [e for e in entries[merchant] if lo <= e["occurred_at"] < hi]
            doc = stored[day.isoformat()]
            by_kind = {
                k: sum(e["amount_minor"] for e in mine if e["kind"] == k)
                for k in ("capture", "refund", "chargeback")
            }
            fees = sum(e["fee_minor"] for e in mine)
            vat = (fees * 15 + 50) // 100
            assert doc["status"] == "completed" and doc["entries"] == len(mine)
            assert doc["gross_captured_minor"] == by_kind["capture"]
            assert doc["refunded_minor"] == by_kind["refund"]
            assert doc["chargebacks_minor"] == by_kind["chargeback"]
            assert (doc["fees_minor"], doc["vat_minor"]) == (fees, vat)
            assert doc["net_minor"] == (
                by_kind["capture"] - by_kind["refund"] - by_kind["chargeback"] - fees - vat
            )
            total_net += doc["net_minor"]
        assert sum(stored[d.isoformat()]["entries"] for d in month) == len(entries[merchant])
        assert sum(stored[d.isoformat()]["gross_captured_minor"] for d in month) == sum(
            e["amount_minor"] for e in entries[merchant] if e["kind"] == "capture"
        )
        assert total_net == sum(stored[d.isoformat()]["net_minor"] for d in month)


def test_the_settlement_settings_come_from_the_environment() -> None:
    s = Settings.from_env(
        {"KALEEM_SETTLEMENT_INTERVAL_S": "30", "KALEEM_SETTLEMENT_LOOKBACK_DAYS": "10"}
    )
    assert (s.settlement_interval_s, s.settlement_lookback_days) == (30.0, 10)
    assert Settings.from_env({}).settlement_interval_s == 60.0
    with pytest.raises(ConfigError):
        Settings.from_env({"KALEEM_SETTLEMENT_MAX_DATES_PER_RUN": "0"})
