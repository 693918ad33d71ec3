"""The scheduled settlement on the real engine: the indexer actor's loop settles a merchant's
past days on its own, each once, and the merchant reads them through the API."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from engine.domain import settlement as st
from engine.domain.ledger import ledger_entry
from tests.api.test_admin_api import call, make_tenant
from tests.conftest import Engine

pytestmark = pytest.mark.integration

RIYADH = st.zone("Asia/Riyadh")


async def test_the_schedule_catches_up_the_days_a_merchant_missed(engine: Engine) -> None:
    t = await make_tenant(engine, "Scheduled shop")
    repos = engine.runtime.records.repos
    today = st.last_due(time.time(), RIYADH) + timedelta(days=1)
    first = today - timedelta(days=3)
    # As if the merchant had signed up three days ago and the engine had been down since.
    await repos.merchants.update_profile(
        t.merchant_id, {"created_at": st.window(first, RIYADH)[0] + 60}
    )
    for i in range(3):
        day = first + timedelta(days=i)
        entry = ledger_entry(
            merchant_id=t.merchant_id,
            provider="moyasar",
            provider_event_id=f"sched_{t.merchant_id}_{i}",
            kind="capture",
            amount_minor=1000 * (i + 1),
            fee_minor=10,
            occurred_at=st.window(day, RIYADH)[0] + 3600,
            payment_id=f"pay_{i}",
        )
        assert await repos.ledger.record(entry)

    items: list[dict[str, object]] = []
    for _ in range(300):  # the loop runs every 2 s in the test engine
        status, page, _ = await call(
            engine, "GET", "/api/v1/finance/settlement/history", t.tokens["viewer"]
        )
        assert status == 200
        items = page["items"]
        if len(items) >= 3:
            break
        await asyncio.sleep(0.2)
    assert [i["date"] for i in items] == [
        (first + timedelta(days=d)).isoformat() for d in (2, 1, 0)
    ]
    assert [i["net_minor"] for i in items] == [3000 - 10 - 2, 2000 - 10 - 2, 1000 - 10 - 2]
    assert all(i["status"] == "completed" for i in items)
    await asyncio.sleep(4.5)  # two more runs: nothing written twice
    status, again, _ = await call(
        engine, "GET", "/api/v1/finance/settlement/history", t.tokens["viewer"]
    )
    assert status == 200 and again["items"] == items
