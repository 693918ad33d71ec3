"""Rate limits, CORS and body limits on a second gateway app with tight settings.

Same real Redis and stores as the session engine; only the limits differ, so the shared
engine's own limits stay generous for the rest of the suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import Engine
from tests.gateways import second_gateway

pytestmark = pytest.mark.integration
ORIGIN = "https://admin.example.com"


@pytest.fixture(scope="module")
async def tight(engine: Engine) -> AsyncIterator[str]:
    async with second_gateway(
        engine.runtime,
        "gateway-tight",
        "127.0.0.2",
        api_rate_per_ip=5,
        api_rate_window_s=3600,
        cors_origins=(ORIGIN,),
    ) as url:
        yield url


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        return r.status, await r.text(), r.headers


async def test_rate_limit_per_ip_with_headers_and_retry_after(tight: str) -> None:
    seen = []
    for _ in range(7):
        status, _, headers = await _get(f"{tight}/api/v1/products")
        seen.append((status, headers.get("RateLimit-Remaining")))
    assert [s for s, _ in seen[:5]] == [401] * 5  # counted even when unauthenticated
    assert seen[0][1] == "4" and seen[4][1] == "0"
    status, body, headers = await _get(f"{tight}/api/v1/products")
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "Too many requests" in body


async def test_cors_allow_list_and_security_headers(tight: str) -> None:
    async with aiohttp.ClientSession() as s:
        pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        async with s.options(f"{tight}/api/v1/products", headers=pre) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "Idempotency-Key" in r.headers["Access-Control-Allow-Headers"]
        evil = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        async with s.options(f"{tight}/api/v1/products", headers=evil) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        async with s.get(f"{tight}/api/v1/openapi.json", headers={"Origin": ORIGIN}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert r.headers["X-Frame-Options"] == "DENY"
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]


async def test_body_limit_is_a_clear_413(engine: Engine) -> None:
    big = {"merchant_name": "x" * 100_000, "email": "a@b.co", "password": "longenough"}
    async with engine.session.post(f"{engine.base_url}/api/v1/auth/signup", json=big) as r:
        assert r.status == 413
        assert (await r.json(content_type=None))["title"] == "Payload too large"


async def test_a_multi_megabyte_import_lands_whole(engine: Engine) -> None:
    """An upload larger than one socket read must arrive whole: every row stored, the last
    one too (a short read once dropped the tail and reported it as a broken line)."""
    _, key = await engine.create_merchant("Big catalogue")
    description = "قطن ناعم مريح للاستخدام اليومي. " * 150  # ~5 KB per row
    rows = [
        orjson.dumps(
            {
                "sku": f"BIG-{n:04d}",
                "title": f"Cotton shirt {n}",
                "price": 50 + n,
                "description": description,
            }
        )
        for n in range(400)
    ]
    body = b"\n".join(rows)
    assert len(body) > 2 * 1024 * 1024
    job = await engine.import_and_wait(key, "/api/v1/catalog/import", body)
    assert job["status"] == "done", job
    assert job["progress"]["stored"] == 400 and not job.get("errors"), job
    auth = {"Authorization": f"Bearer {key}"}
    async with engine.session.get(f"{engine.base_url}/api/v1/products/BIG-0399", headers=auth) as r:
        assert r.status == 200
        assert (await r.json())["price"] == 449
