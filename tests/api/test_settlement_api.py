"""The finance settlement routes through real HTTP on the real gateway app (embedded Redis,
SQLite records): what a merchant's staff see for a day's payments, who may do what."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import aiohttp
import pytest

from engine.domain import settlement as st
from engine.domain.ledger import ledger_entry
from tests.api.test_admin_api import call, make_tenant
from tests.channels.harness import Gateway, gateway_fixture
from tests.conftest import Engine

gateway = gateway_fixture("settlement-api")
RIYADH = st.zone("Asia/Riyadh")
BASE = "/api/v1/finance/settlement"


@dataclass
class _Client:
    """What ``tests.api.test_admin_api.call`` needs of an engine: a session and a base URL."""

    session: aiohttp.ClientSession
    base_url: str


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[Engine]:
    async with aiohttp.ClientSession() as session:
        yield cast(Engine, _Client(session, gateway.base_url))


async def _pay(
    gateway: Gateway, merchant: str, n: int, at: float, kind: str, amount: int, fee: int
) -> None:
    entry = ledger_entry(
        merchant_id=merchant,
        provider="tap",
        provider_event_id=f"chg_{merchant}_{n}",
        kind=kind,
        amount_minor=amount,
        fee_minor=fee,
        occurred_at=at,
        payment_id=f"pay_{n}",
    )
    assert await gateway.records.repos.ledger.record(entry)


async def test_staff_settle_a_day_see_it_in_history_and_summary_and_never_twice(
    gateway: Gateway, client: Engine
) -> None:
    t = await make_tenant(client, "Settle shop")
    owner, admin, viewer, agent = (t.tokens[r] for r in ("owner", "admin", "viewer", "agent"))
    today = st.last_due(time.time(), RIYADH) + timedelta(days=1)
    day = today - timedelta(days=2)
    lo, hi = st.window(day, RIYADH)
    await _pay(gateway, t.merchant_id, 1, lo, "capture", 150_000, 3_450)  # 00:00 sharp
    await _pay(gateway, t.merchant_id, 2, hi - 1, "capture", 20_000, 460)  # 23:59:59
    await _pay(gateway, t.merchant_id, 3, lo + 3600, "refund", 5_000, 0)
    await _pay(gateway, t.merchant_id, 4, lo + 7200, "chargeback", 1_000, 1_500)
    await _pay(gateway, t.merchant_id, 5, hi, "capture", 99_999, 99)  # the next day
    fees = 3_450 + 460 + 1_500
    vat = (fees * 15 + 50) // 100

    status, _body, _ = await call(client, "POST", f"{BASE}/trigger/{day}", viewer)
    assert status == 403
    status, _body, _ = await call(client, "POST", f"{BASE}/trigger/{day}", agent)
    assert status == 403
    status, first, _ = await call(client, "POST", f"{BASE}/trigger/{day}", admin)
    assert status == 201, first
    assert first["status"] == "completed" and first["date"] == day.isoformat()
    assert first["gross_captured_minor"] == 170_000 and first["refunded_minor"] == 5_000
    assert first["chargebacks_minor"] == 1_000 and first["fees_minor"] == fees
    assert first["vat_minor"] == vat and first["vat_rate_bp"] == 1500
    assert first["net_minor"] == 170_000 - 5_000 - 1_000 - fees - vat
    assert (first["entries"], first["captures"], first["refunds"], first["chargebacks"]) == (
        4,
        2,
        1,
        1,
    )
    assert first["currency"] == "SAR" and first["timezone"] == "Asia/Riyadh"

    status, again, _ = await call(client, "POST", f"{BASE}/trigger/{day}", owner)
    assert status == 200 and again == first  # the existing record, not a second

    status, got, _ = await call(client, "GET", f"{BASE}/{day}", viewer)
    assert status == 200 and got == first
    status, retried, _ = await call(client, "POST", f"{BASE}/retry/{day}", admin)
    assert status == 409 and retried["status"] == 409  # completed: nothing to retry

    # The bare trigger settles the latest due date (yesterday, with no payments).
    status, latest, _ = await call(client, "POST", f"{BASE}/trigger", owner)
    assert status == 201 and latest["date"] == (today - timedelta(days=1)).isoformat()
    assert latest["entries"] == 1 and latest["net_minor"] == 99_999 - 99 - 15  # the 5th entry

    status, page1, _ = await call(client, "GET", f"{BASE}/history?limit=1", viewer)
    assert status == 200 and [i["date"] for i in page1["items"]] == [latest["date"]]
    status, page2, _ = await call(
        client, "GET", f"{BASE}/history?limit=1&cursor={page1['next_cursor']}", viewer
    )
    assert status == 200 and [i["date"] for i in page2["items"]] == [day.isoformat()]
    assert page2["next_cursor"] is None

    status, summary, _ = await call(client, "GET", f"{BASE}/stats/summary?days=7", viewer)
    assert status == 200, summary
    assert summary["days"] == 7 and summary["completed"] == 2 and summary["failed"] == 0
    assert summary["net_minor"] == first["net_minor"] + latest["net_minor"]
    assert summary["gross_captured_minor"] == 170_000 + 99_999
    assert summary["to"] == latest["date"]


async def test_dates_that_cannot_be_settled_are_problems(gateway: Gateway, client: Engine) -> None:
    t = await make_tenant(client, "Dates shop")
    owner = t.tokens["owner"]
    today = st.last_due(time.time(), RIYADH) + timedelta(days=1)
    for path, expected in (
        (f"{BASE}/trigger/{today}", 422),  # the day is not over
        (f"{BASE}/trigger/{today + timedelta(days=3)}", 422),  # the future
        (f"{BASE}/trigger/2026-02-30", 400),
        (f"{BASE}/trigger/yesterday", 400),
        (f"{BASE}/retry/{today - timedelta(days=5)}", 404),  # never settled
    ):
        status, body, headers = await call(client, "POST", path, owner)
        assert status == expected, (path, body)
        assert headers["Content-Type"].startswith("application/problem+json"), path
    status, body, _ = await call(client, "GET", f"{BASE}/{today - timedelta(days=9)}", owner)
    assert status == 404
    status, body, _ = await call(client, "GET", f"{BASE}/stats/summary?days=0", owner)
    assert status == 422
    status, body, _ = await call(client, "GET", f"{BASE}/stats/summary?days=367", owner)
    assert status == 422


async def test_a_merchant_sees_only_its_own_settlements(gateway: Gateway, client: Engine) -> None:
    a = await make_tenant(client, "A shop")
    b = await make_tenant(client, "B shop")
    day = st.last_due(time.time(), RIYADH) - timedelta(days=3)
    await _pay(gateway, a.merchant_id, 1, st.window(day, RIYADH)[0] + 60, "capture", 1234, 0)
    status, _, _ = await call(client, "POST", f"{BASE}/trigger/{day}", a.tokens["owner"])
    assert status == 201
    status, _, _ = await call(client, "GET", f"{BASE}/{day}", b.tokens["owner"])
    assert status == 404
    status, page, _ = await call(client, "GET", f"{BASE}/history", b.tokens["viewer"])
    assert status == 200 and page["items"] == []
    status, mine, _ = await call(client, "POST", f"{BASE}/trigger/{day}", b.tokens["owner"])
    assert status == 201 and mine["entries"] == 0 and mine["net_minor"] == 0


async def test_the_merchant_timezone_sets_the_business_day(
    gateway: Gateway, client: Engine
) -> None:
    t = await make_tenant(client, "NY shop")
    owner = t.tokens["owner"]
    status, body, _ = await call(
        client, "PATCH", "/api/v1/merchant", owner, {"timezone": "Mars/Base"}
    )
    assert status == 422, body
    status, me, _ = await call(client, "GET", "/api/v1/merchant", owner)
    assert status == 200 and me["timezone"] == "Asia/Riyadh"  # the default
    status, me, _ = await call(
        client, "PATCH", "/api/v1/merchant", owner, {"timezone": "America/New_York"}
    )
    assert status == 200 and me["timezone"] == "America/New_York"
    ny = st.zone("America/New_York")
    day = st.last_due(time.time(), ny) - timedelta(days=1)
    lo, hi = st.window(day, ny)
    # 23:30 in New York is already the next day in Riyadh: it settles on New York's date.
    await _pay(gateway, t.merchant_id, 1, hi - 1800, "capture", 4_000, 0)
    await _pay(gateway, t.merchant_id, 2, lo - 1, "capture", 777, 0)  # the day before
    status, doc, _ = await call(client, "POST", f"{BASE}/trigger/{day}", owner)
    assert status == 201, doc
    assert doc["timezone"] == "America/New_York" and doc["gross_captured_minor"] == 4_000
    assert (doc["window_start"], doc["window_end"]) == (lo, hi)
