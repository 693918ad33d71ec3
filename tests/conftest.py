"""Shared fixtures. The whole engine (real Redis, Ray, Serve, models, gateway on loopback) is
started once per test session and only when a test asks for it."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.adapters.repositories import sqlite_repositories
from engine.config import Settings
from engine.services.repositories import Repositories
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram, make_update

OPERATOR_TOKEN = "test-operator-" + "x" * 24
# Update ids of customers who write through Engine.say (a range no test picks by hand).
_SAID = itertools.count(90_000_000)


def _models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("KALEEM_TEST_MODELS_DIR")
    if configured:
        return Path(configured)
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from actors.runtime import Runtime

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    data_dir = tmp_path_factory.mktemp("kaleem-data")
    settings = Settings(
        data_dir=data_dir,
        models_dir=_models_dir(tmp_path_factory),
        port=0,
        admin_token=OPERATOR_TOKEN,
        ray_dashboard=False,
        host_actors=2,
        inbox_partitions=4,
        log_json=False,
        playground_timeout_s=60.0,
        trace_file=str(data_dir / "spans.jsonl"),  # every process appends its finished spans
        allow_private_api_base=True,  # the fake platforms listen on loopback
        settlement_interval_s=2.0,  # the scheduled settlement test waits for a run or two
        payment_sweep_interval_s=2.0,  # the dead-gateway payment test waits for a sweep
        # Every test customer writes from 127.0.0.1: one address for the whole suite.
        webchat_frames_per_ip=100_000,
        webchat_frame_burst_per_ip=10_000,
    )
    rt = Runtime(settings)
    rt.start_backends()
    try:
        yield rt
    finally:
        rt.stop_backends()


@dataclass
class Engine:
    base_url: str
    runtime: Any
    session: aiohttp.ClientSession

    @property
    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    async def create_merchant(self, name: str = "Shop", language: str = "ar") -> tuple[str, str]:
        async with self.session.post(
            f"{self.base_url}/api/v1/merchants",
            json={"name": name, "default_language": language},
            headers=self.operator,
        ) as resp:
            assert resp.status == 201, await resp.text()
            body = await resp.json()
        return str(body["id"]), str(body["api_key"])

    async def import_and_wait(
        self, api_key: str, route: str, data: bytes, content_type: str = "application/x-ndjson"
    ) -> dict[str, Any]:
        import asyncio

        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": content_type}
        async with self.session.post(f"{self.base_url}{route}", data=data, headers=headers) as r:
            assert r.status == 202, await r.text()
            job_id = (await r.json())["job_id"]
        while True:
            async with self.session.get(
                f"{self.base_url}/api/v1/jobs/{job_id}", headers=headers
            ) as r:
                job: dict[str, Any] = await r.json()
            if job["status"] != "running":
                return job
            await asyncio.sleep(0.1)

    async def connect_telegram(
        self, api_key: str, api_base: str, token: str = DEFAULT_TOKEN
    ) -> tuple[str, str]:
        """A Telegram channel pointed at a fake server; returns (channel id, webhook secret)."""
        secret = new_secret()
        async with self.session.post(
            f"{self.base_url}/api/v1/channels",
            json={
                "kind": "telegram",
                "bot_token": token,
                "secret_token": secret,
                "api_base": api_base,
            },
            headers={"Authorization": f"Bearer {api_key}"},
        ) as resp:
            assert resp.status == 201, await resp.text()
            body = await resp.json()
        assert body["webhook_url"].endswith(f"/webhooks/telegram/{body['id']}")
        return str(body["id"]), secret

    async def post_telegram_update(
        self, channel_id: str, secret: str | None, update: dict[str, Any] | bytes
    ) -> int:
        """POST an update to the Telegram webhook as Telegram does; returns the HTTP status."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        data = update if isinstance(update, bytes) else orjson.dumps(update)
        async with self.session.post(
            f"{self.base_url}/webhooks/telegram/{channel_id}", data=data, headers=headers
        ) as resp:
            await resp.read()
            return resp.status

    async def say(self, channel: tuple[str, str], chat: int, text: str) -> None:
        """A Telegram customer in ``chat`` writes ``text`` on ``channel`` (id, secret)."""
        update = make_update(next(_SAID), chat, text)
        assert await self.post_telegram_update(channel[0], channel[1], update) == 200

    async def ask(self, api_key: str, text: str, customer: str = "c1") -> dict[str, Any]:
        async with self.session.post(
            f"{self.base_url}/api/v1/playground/messages",
            json={"customer_id": customer, "text": text},
            headers={"Authorization": f"Bearer {api_key}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: dict[str, Any] = await resp.json()
            return body


@pytest.fixture(scope="session")
async def engine(runtime: Any) -> AsyncIterator[Engine]:
    await runtime.start_gateway()
    async with aiohttp.ClientSession() as session:
        yield Engine(f"http://127.0.0.1:{runtime.port}", runtime, session)
    await runtime.stop()


@pytest.fixture
async def sqlite_repos(tmp_path: Path) -> AsyncIterator[Repositories]:
    """Fresh record repositories on the real embedded store (SQLite in ``tmp_path``)."""
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    await repos.ensure_indexes()
    yield repos
    await repos.close()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for a module's tests against a gateway of their own."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@dataclass
class Store:
    merchant_id: str
    api_key: str


@pytest.fixture(scope="session")
async def demo_store(engine: Engine) -> Store:
    from engine.demo import demo_catalog_bytes, demo_knowledge_bytes

    merchant_id, api_key = await engine.create_merchant("Kaleem Demo", "ar")
    job = await engine.import_and_wait(api_key, "/api/v1/catalog/import", demo_catalog_bytes())
    assert job["status"] == "done", job
    job = await engine.import_and_wait(api_key, "/api/v1/knowledge/import", demo_knowledge_bytes())
    assert job["status"] == "done", job
    return Store(merchant_id, api_key)


def new_secret() -> str:
    return secrets.token_urlsafe(24)


__all__ = ["DEFAULT_TOKEN", "OPERATOR_TOKEN", "Engine", "Store", "new_secret"]
