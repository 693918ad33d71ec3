"""Store integrations cannot aim the engine's platform calls at internal addresses (SSRF):
the same three locks as channels — the connect form, the resolver, no redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.stores.base import StoreRequest
from engine.adapters.store_http import EgressStoreHttp
from engine.services.ports import StoreUnreachable
from tests.channels.harness import Gateway, start_gateway
from tests.gateways import served


@pytest.fixture(scope="module")
async def guarded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    g = await start_gateway(
        Path(tmp_path_factory.mktemp("store-ssrf-gw")),
        allow_private_api_base=False,
        provider_hosts=("localhost",),
    )
    yield g
    await g.close()


async def _connect(gw: Gateway, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    _, key = await gw.records.create_merchant("Attacker", "en")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gw.base_url}/api/v1/integrations",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        return r.status, await r.json()


SALLA = {"access_token": "a", "webhook_secret": "s"}


@pytest.mark.parametrize(
    "api_base",
    [
        "http://127.0.0.1:9090",
        "https://169.254.169.254",
        "https://10.0.0.5:6333",
        "https://api.salla.dev.evil.example",
        "https://user:pw@api.salla.dev",
        "http://api.salla.dev",
    ],
)
async def test_a_private_or_foreign_api_base_is_refused_when_connecting(
    guarded: Gateway, api_base: str
) -> None:
    status, body = await _connect(
        guarded, {"kind": "salla", "credentials": SALLA, "api_base": api_base}
    )
    assert status == 422 and body["errors"][0]["field"] == "api_base"


async def test_a_shop_that_is_not_a_shopify_domain_is_refused(guarded: Gateway) -> None:
    creds = {"shop": "169.254.169.254", "access_token": "a", "client_secret": "s"}
    status, body = await _connect(guarded, {"kind": "shopify", "credentials": creds})
    assert status == 422 and body["errors"][0]["field"] == "credentials.shop"
    other = {"shop": "demo.myshopify.com", "access_token": "a", "client_secret": "s"}
    status, body = await _connect(
        guarded,
        {"kind": "shopify", "credentials": other, "api_base": "https://other.myshopify.com"},
    )
    assert status == 422 and body["errors"][0]["field"] == "api_base"


async def test_missing_or_foreign_credentials_are_named(guarded: Gateway) -> None:
    status, body = await _connect(guarded, {"kind": "zid", "credentials": {"access_token": "a"}})
    assert status == 422 and body["errors"][0]["field"] == "credentials.authorization"
    status, body = await _connect(
        guarded, {"kind": "salla", "credentials": {**SALLA, "password": "x"}}
    )
    assert status == 422 and body["errors"][0]["field"] == "credentials.password"


async def test_platform_calls_never_reach_private_addresses_nor_follow_redirects() -> None:
    hits: list[str] = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/moved":
            raise web.HTTPTemporaryRedirect("/admin/v2/products")
        return web.json_response({"data": [], "pagination": {}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target)
    guarded = EgressStoreHttp(allow_private=False)
    open_ = EgressStoreHttp(allow_private=True)
    try:
        async with served(app) as url:
            port = url.rsplit(":", 1)[1]
            with pytest.raises(StoreUnreachable):  # an IP literal: refused before connecting
                await guarded.send(StoreRequest("GET", f"{url}/admin/v2/products"))
            with pytest.raises(StoreUnreachable):  # a name resolving to loopback
                await guarded.send(StoreRequest("GET", f"http://localhost:{port}/x"))
            assert hits == []
            moved = await open_.send(StoreRequest("GET", f"{url}/moved"))
            assert moved.status == 307 and hits == ["/moved"]  # not followed
    finally:
        await guarded.close()
        await open_.close()
