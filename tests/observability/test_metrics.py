"""Metrics from the real code paths: one playground message through the running engine shows
up on the gateway's /metrics (TTFR by channel, deliveries, queue backlog and age)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from observability import metrics


def _value(body: str, sample: str) -> float:
    m = re.search(rf"^{re.escape(sample)} ([0-9.e+-]+)$", body, re.M)
    assert m, f"{sample} not exported"
    return float(m.group(1))


def test_families_keep_prometheus_names_and_bounded_intents() -> None:
    names = metrics.exported_names()
    for old in ("kaleem_http_requests_total", "kaleem_webhooks_total", "kaleem_inbox_backlog"):
        assert old in names
    assert "kaleem_ttfr_seconds_bucket" in names and "kaleem_ttfr_seconds_count" in names
    assert metrics.bounded_intent("product_search") == "product_search"
    assert metrics.bounded_intent("x" * 40) == "other"


@pytest.mark.integration
async def test_a_reply_is_measured_end_to_end_on_the_gateway_metrics(engine: Any) -> None:
    _mid, key = await engine.create_merchant("Metrics Shop", "en")
    reply = await engine.ask(key, "hello", customer="metrics-1")
    assert reply["text"]
    async with engine.session.get(f"{engine.base_url}/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    assert _value(body, 'kaleem_ttfr_seconds_count{channel="playground"}') >= 1
    assert _value(body, 'kaleem_deliveries_total{channel="playground",outcome="delivered"}') >= 1
    assert _value(body, "kaleem_inbox_backlog") >= 0
    assert _value(body, 'kaleem_outbox_oldest_age_seconds{channel="telegram"}') >= 0
    assert _value(body, "kaleem_dead_letter_backlog") >= 0
    assert _value(body, "kaleem_disk_size_bytes") > 0
    assert _value(body, "process_resident_memory_bytes") > 0
    # bounded labels: no merchant or customer id anywhere in the exposition
    assert _mid not in body and "metrics-1" not in body
