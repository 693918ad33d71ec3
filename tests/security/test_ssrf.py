"""A merchant cannot aim the engine's provider calls at internal addresses (SSRF).

Signup is public, so a "merchant" is anyone. Before the guard a channel's ``api_base`` could
name Prometheus, Qdrant, the Ray dashboard or a metadata IP; calls carried the channel's tokens,
followed redirects (a 307 keeps the POST) and echoed the remote's error text back in
``webhook_error`` and dead-letter reasons, which made the engine a port scanner. Each test here
talks to a real gateway (``tests/channels/harness.py``) run with the production default
(private addresses refused) and checks what the attacker sees and what the target received.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors import registry
from connectors.base import PermanentFailure, ProviderCall
from engine.adapters import egress
from engine.adapters.providers import ProviderClient
from tests.channels.harness import Gateway, start_gateway
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as f:
        yield f


@pytest.fixture(scope="module")
async def guarded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    """A gateway as in production, except that the operator allows the name ``localhost``
    (so the connect form passes and the connect-time address check is what must refuse)."""
    g = await start_gateway(
        Path(tmp_path_factory.mktemp("ssrf-gw")),
        allow_private_api_base=False,
        provider_hosts=("localhost",),
    )
    yield g
    await g.close()


async def _connect(gw: Gateway, api_base: str) -> tuple[int, dict[str, Any]]:
    _, key = await gw.records.create_merchant("Attacker", "en")
    body = {
        "kind": "telegram",
        "bot_token": DEFAULT_TOKEN,
        "secret_token": "s",
        "api_base": api_base,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gw.base_url}/api/v1/channels", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        return r.status, await r.json()


@pytest.mark.parametrize(
    "api_base",
    [
        "http://127.0.0.1:9090",  # Prometheus (/-/quit)
        "https://169.254.169.254",  # cloud metadata
        "https://10.0.0.5:6333",  # Qdrant on the private network
        "https://[::1]:8265",  # the Ray dashboard over IPv6 loopback
        "https://api.telegram.org.evil.example",  # not the platform's host
        "https://user:pw@api.telegram.org",  # credentials in the URL
        "http://api.telegram.org",  # the right host without TLS
    ],
)
async def test_a_private_or_foreign_api_base_is_refused_when_connecting(
    guarded: Gateway, fake: FakeTelegram, api_base: str
) -> None:
    fake.reset()
    status, body = await _connect(guarded, api_base)
    assert status == 422 and body["errors"][0]["field"] == "api_base"
    assert fake.calls == []


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    guarded: Gateway, fake: FakeTelegram
) -> None:
    """The form allows ``localhost`` (operator's list), but the resolver check refuses its
    loopback address before a byte leaves: DNS rebinding cannot pass the form and then hit an
    internal address."""
    fake.reset()
    port = fake.base_url.rsplit(":", 1)[1]
    status, body = await _connect(guarded, f"https://localhost:{port}")
    assert status == 201
    assert body["webhook_registered"] is False and body["webhook_error"] == egress.BLOCKED
    assert fake.calls == []


async def test_delivery_to_an_ip_literal_is_refused_without_connecting() -> None:
    telegram = registry.KINDS["telegram"]
    async with egress.session(allow_private=False) as session:
        client = ProviderClient(session, timeout_s=2.0, allow_private=False)
        for url in ("http://127.0.0.1:1/bot1:x/sendMessage", "http://[::ffff:10.0.0.1]/x"):
            outcome = await client.call(telegram, ProviderCall("POST", url, {}))
            assert outcome == PermanentFailure(egress.BLOCKED)


async def test_redirects_are_not_followed() -> None:
    """A 307 would replay the POST, with its token, to wherever the remote points."""
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{target_port}/steal")

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"ok": True, "result": {"message_id": 1}})

    apps = []
    for handler in (redirect, target):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        apps.append(runner)
    redirect_port = apps[0].addresses[0][1]
    target_port = apps[1].addresses[0][1]
    try:
        async with egress.session(allow_private=True) as session:
            client = ProviderClient(session, timeout_s=5.0, allow_private=True)
            call = ProviderCall("POST", f"http://127.0.0.1:{redirect_port}/bot1:x/sendMessage", {})
            outcome = await client.call(registry.KINDS["telegram"], call)
        assert isinstance(outcome, PermanentFailure) and "redirect refused" in outcome.reason
        assert hits == []
    finally:
        for runner in apps:
            await runner.cleanup()


async def test_the_remotes_words_never_reach_the_merchant(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    """An internal service's error text (here in Telegram's envelope) is not echoed back."""
    fake.reset()
    fake.fail_next(1, 400, description="Bad Request: redis_version:7.2 role:master", method=None)
    gw = await start_gateway(tmp_path)  # tests allow loopback: the fake is the "internal host"
    try:
        status, body = await _connect(gw, fake.base_url)
    finally:
        await gw.close()
    assert status == 201 and body["webhook_registered"] is False
    assert "redis_version" not in body["webhook_error"] and body["webhook_error"] == "telegram 400"
