"""Fsynced acknowledgements: the embedded server's policy, the external-Redis check, the 503."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from aiohttp import web

from engine.adapters.redis.durability import check_durability, probe_durability
from engine.adapters.redis.server import EmbeddedRedis
from engine.config import ConfigError, Settings
from engine.http.app import edge_middleware
from tests.gateways import served


@pytest.fixture
def everysec(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path / "lax", appendfsync="everysec")
    srv.start()
    yield srv
    srv.stop()


def test_the_embedded_server_fsyncs_before_it_answers(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as srv:
        found = probe_durability(srv.url)
        assert (found.appendonly, found.appendfsync, found.durable) == ("yes", "always", True)
        assert check_durability(srv.url, "require") == found


def test_an_external_redis_that_may_lose_acks_is_refused_by_default(
    everysec: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=r"appendfsync everysec.*KALEEM_REDIS_DURABILITY=warn"):
        check_durability(everysec.url, "require")
    with caplog.at_level(logging.WARNING):
        found = check_durability(everysec.url, "warn")
    assert not found.durable and "appendfsync always" in caplog.text


def test_an_unreachable_redis_is_a_clear_start_up_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach the Redis at REDIS_URL"):
        check_durability(f"unix://{tmp_path}/nothing.sock", "warn")


def test_the_policy_comes_from_the_environment() -> None:
    assert Settings.from_env({}).redis_durability == "require"
    assert Settings.from_env({"KALEEM_REDIS_DURABILITY": "WARN"}).redis_durability == "warn"
    with pytest.raises(ConfigError, match="KALEEM_REDIS_DURABILITY"):
        Settings.from_env({"KALEEM_REDIS_DURABILITY": "maybe"})


class WrappedStoreError(Exception):
    """An adapter's own error raised from a Redis connection error."""


async def _down(request: web.Request) -> web.Response:
    raise redis.ConnectionError("Error 111 connecting to unix socket")


async def _wrapped(request: web.Request) -> web.Response:
    try:
        raise redis.TimeoutError("Timeout reading from socket")
    except redis.TimeoutError as exc:
        raise WrappedStoreError("append failed") from exc


async def _bug(request: web.Request) -> web.Response:
    raise KeyError("not a store problem")


@pytest.fixture
async def app_url() -> AsyncIterator[str]:
    app = web.Application(middlewares=[edge_middleware])
    app.router.add_post("/down", _down)
    app.router.add_post("/wrapped", _wrapped)
    app.router.add_post("/bug", _bug)
    async with served(app) as url:
        yield url


async def test_redis_unreachable_is_a_retryable_503_never_a_500(app_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/down", "/wrapped"):
            async with session.post(app_url + path) as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "1"
                assert resp.content_type == "application/problem+json"
                body = await resp.json(content_type=None)
                assert body["status"] == 503 and body["title"] == "Service unavailable"
        async with session.post(app_url + "/bug") as resp:
            assert resp.status == 500 and "Retry-After" not in resp.headers
