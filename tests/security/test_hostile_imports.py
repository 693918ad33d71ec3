"""Uploads cannot crash the gateway, hog it, or grow a catalogue without bound.

Found before the fix: a deeply nested JSON line raised ``RecursionError`` (a 500), uploads of
50 MiB were read whole with no limit on how many at once, and a merchant's catalogue had no
quota. A real gateway (``tests/channels/harness.py``) answers here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson

from tests.channels.harness import Gateway, start_gateway


async def _import(
    http: aiohttp.ClientSession, gw: Gateway, key: str, data: object
) -> tuple[int, dict[str, object]]:
    async with http.post(
        f"{gw.base_url}/api/v1/catalog/import",
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
    ) as r:
        return r.status, await r.json()


async def _job(
    http: aiohttp.ClientSession, gw: Gateway, key: str, job_id: str
) -> dict[str, object]:
    async with http.get(
        f"{gw.base_url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}
    ) as r:
        assert r.status == 200
        job: dict[str, object] = await r.json()
        return job


async def test_a_deeply_nested_row_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path)
    try:
        _, key = await gw.records.create_merchant("Shop", "en")
        body = b'{"sku": "ok-1", "title": "Fine"}\n' + b"[" * 200_000 + b"\n"
        body += b'{"sku": "x", "attributes": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001 + b"\n"
        async with aiohttp.ClientSession() as http:
            status, accepted = await _import(http, gw, key, body)
            assert status == 202, accepted
            job = await _job(http, gw, key, str(accepted["job_id"]))
        errors = {e["line"]: e["message"] for e in job["errors"]}  # type: ignore[attr-defined]
        assert errors == {
            2: "invalid JSON: nested too deeply",
            3: "invalid JSON: nested too deeply",
        }
        assert job["progress"]["total"] == 1  # type: ignore[index]
    finally:
        await gw.close()


async def test_one_merchant_reads_one_upload_at_a_time(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path)
    try:
        _, key = await gw.records.create_merchant("Shop", "en")
        _, other = await gw.records.create_merchant("Other", "en")
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"sku": "s-1", "title": "Slow"}\n'
            await release.wait()
            yield b'{"sku": "s-2", "title": "Slower"}\n'

        async with aiohttp.ClientSession() as http:
            first = asyncio.create_task(_import(http, gw, key, slow_body()))
            await asyncio.sleep(0.5)  # let the first upload take its slot (no timing asserted)
            second = await _import(http, gw, key, b'{"sku": "t-1", "title": "T"}\n')
            others = await _import(http, gw, other, b'{"sku": "o-1", "title": "O"}\n')
            release.set()
            done = await first
        assert second[0] == 429  # the same merchant waits for its own upload
        assert others[0] == 202  # another merchant does not
        assert done[0] == 202
    finally:
        await gw.close()


async def test_a_catalogue_has_a_quota(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, max_products_per_merchant=3)
    try:
        _, key = await gw.records.create_merchant("Shop", "en")
        rows = b"".join(orjson.dumps({"sku": f"q-{n}", "title": "Q"}) + b"\n" for n in range(5))
        async with aiohttp.ClientSession() as http:
            status, problem = await _import(http, gw, key, rows)
        assert status == 422 and "at most 3 products" in str(problem["detail"])
    finally:
        await gw.close()
