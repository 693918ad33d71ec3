"""The real gateway app (aiohttp ``create_app``) on loopback with a real embedded Redis and the
SQLite record store in the data dir: everything of intake except Ray, so channel tests start
in a second instead of a Ray cluster's 30."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet

from engine.adapters.records import Records
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.bootstrap import Container, Remotes
from engine.config import Settings
from engine.http.app import create_app
from tests.gateways import listen

OPERATOR = "channels-operator-" + "y" * 20


class _NoIndexer:
    def submit(self, *args: Any, **kwargs: Any) -> None:
        return None

    def reconcile(self, merchant_id: str) -> None:
        return None


async def _ready() -> dict[str, bool]:
    return {"redis": True}


@dataclass
class Gateway:
    base_url: str
    settings: Settings
    redis: aioredis.Redis
    records: Records
    runner: web.AppRunner
    embedded: EmbeddedRedis

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.redis.aclose()
        await self.records.repos.close()
        self.embedded.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_gateway(data_dir: Path, **overrides: Any) -> Gateway:
    embedded = EmbeddedRedis(data_dir / "redis")
    url = embedded.start()
    port = _free_port()
    settings = Settings(
        data_dir=data_dir,
        port=port,
        admin_token=OPERATOR,
        redis_url=url,
        secret_key=Fernet.generate_key().decode(),
        inbox_partitions=4,
        log_json=False,
        allow_private_api_base=True,  # the fake platforms listen on loopback
    ).with_overrides(**overrides)
    c = Container(
        settings,
        Remotes(vectors=object(), indexer=_NoIndexer()),  # type: ignore[arg-type]
        redis=redis_client(url, max_connections=128),
    )
    redis, records = c.redis, c.records
    await records.ensure_indexes()
    runner, _ = await listen(create_app(c.gateway(_ready)), "127.0.0.1", port)
    return Gateway(f"http://127.0.0.1:{port}", settings, redis, records, runner, embedded)


def gateway_fixture(name: str, **overrides: Any) -> Any:
    """A module-scoped fixture serving a gateway on its own data dir (``overrides``: Settings)."""

    @pytest.fixture(scope="module")
    async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
        g = await start_gateway(Path(tmp_path_factory.mktemp(name)), **overrides)
        yield g
        await g.close()

    return gateway
