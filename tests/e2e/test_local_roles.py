"""A workers process and a gateway replica sharing one data dir on one machine.

The workers process owns the data dir (engine lock, stores lock, the supervised Redis); a
gateway replica takes no lock, attaches through what the workers wrote into the data dir, and
serves webhooks end to end. Stopping the gateway leaves the workers running.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from engine.adapters.datadir import ENGINE_LOCK
from tests.e2e.served import Served, alive_of, telegram_shop
from tests.fakes.fake_telegram import FakeTelegram, make_update

pytestmark = pytest.mark.integration


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


async def test_a_gateway_replica_attaches_to_a_local_workers_process(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    models = Path(os.environ["KALEEM_TEST_MODELS_DIR"])
    data = tmp_path / "data"
    workers = Served(data, models, log_path=tmp_path / "workers.log", role="workers")
    gateway = Served(data, models, log_path=tmp_path / "gateway.log", role="gateway")
    try:
        await asyncio.to_thread(workers.start)
        await asyncio.to_thread(gateway.start)
        assert workers.proc is not None and gateway.proc is not None
        owner = json.loads((data / ENGINE_LOCK).read_text())
        assert (owner["pid"], owner["role"]) == (workers.proc.pid, "workers")

        shop = await telegram_shop(gateway.url, data, telegram.base_url, "Roles Shop")
        channel_id, secret = shop.channel_id, shop.secret
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{gateway.url}/webhooks/telegram/{channel_id}",
                data=orjson.dumps(make_update(1, 4242, "hello")),
                headers={"X-Telegram-Bot-Api-Secret-Token": secret},
            ) as resp:
                assert resp.status == 200
            async with http.get(f"{gateway.url}/healthz") as resp:
                assert resp.status == 200
        await telegram.wait_for_messages(4242, 1, timeout=120)

        gateway_procs = gateway.descendants()
        assert await asyncio.to_thread(gateway.stop) == 0
        assert alive_of(gateway_procs) == []
        assert workers.proc.poll() is None  # the replica's exit leaves the owner running
        started = workers.descendants()
        assert await asyncio.to_thread(workers.stop) == 0
        assert alive_of(started) == []
    finally:
        for s in (gateway, workers):
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
