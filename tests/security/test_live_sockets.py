"""Agents' live sockets cannot take a gateway down, and end when their credential does.

Each ``/api/v1/live`` socket used to hold a pub/sub connection from the pool the webhooks use,
so ~63 sockets made every webhook wait 20 s and fail; and a socket kept streaming a merchant's
customer messages after logout, key revocation, user removal, role change or token expiry.
These tests use a real gateway (``tests/channels/harness.py``) and a real Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from engine.http.context import jwt_secret
from engine.http.live import TOO_MANY, UNAUTHORIZED
from engine.http.tokens import ISSUER, family_key
from tests.channels.harness import Gateway, start_gateway

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    g = await start_gateway(
        Path(tmp_path_factory.mktemp("live-gw")),
        live_max_per_merchant=150,
        live_max_per_address=150,
    )
    yield g
    await g.close()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No client-side connection cap: the test opens more sockets than aiohttp's default 100.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        yield s


async def _json(
    http: aiohttp.ClientSession, method: str, url: str, token: str = "", body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as r:
        return r.status, (await r.json() if r.status != 204 else None)


async def _owner(gw: Gateway, http: aiohttp.ClientSession) -> dict[str, Any]:
    body = {
        "merchant_name": "Live shop",
        "email": f"o-{secrets.token_hex(4)}@shop.example",
        "password": PASSWORD,
    }
    status, out = await _json(http, "POST", f"{gw.base_url}/api/v1/auth/signup", body=body)
    assert status == 201, out
    return dict(out)


async def _agent(gw: Gateway, http: aiohttp.ClientSession, owner: str) -> tuple[str, str]:
    """(user id, access token) of a freshly invited and accepted agent."""
    email = f"a-{secrets.token_hex(4)}@shop.example"
    _, invited = await _json(
        http, "POST", f"{gw.base_url}/api/v1/users", owner, {"email": email, "role": "agent"}
    )
    _, tokens = await _json(
        http,
        "POST",
        f"{gw.base_url}/api/v1/auth/accept-invite",
        body={"invite_token": invited["invite_token"], "password": PASSWORD},
    )
    return str(invited["id"]), str(tokens["access_token"])


async def _socket(http: aiohttp.ClientSession, gw: Gateway, token: str) -> Any:
    ws = await http.ws_connect(gw.base_url.replace("http", "ws") + "/api/v1/live")
    await ws.send_json({"type": "auth", "token": token})
    return ws


async def _closed_with(ws: Any) -> int | None:
    """Read until the server closes; its close code."""
    while True:
        msg = await ws.receive(timeout=90)
        if msg.type == aiohttp.WSMsgType.CLOSE:  # the code the server's close frame carries
            return int(msg.data)
        if msg.type == aiohttp.WSMsgType.CLOSED:
            return ws.close_code  # type: ignore[no-any-return]


async def test_many_sockets_hold_no_connections_of_the_webhook_pool(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    owner = await _owner(gw, http)
    before = int((await gw.redis.info("clients"))["connected_clients"])
    sockets = [await _socket(http, gw, owner["access_token"]) for _ in range(140)]
    try:
        for ws in sockets:
            assert (await ws.receive_json(timeout=30))["type"] == "ready"
        after = int((await gw.redis.info("clients"))["connected_clients"])
        assert after - before < 5  # 140 sockets, one subscription (was one connection each)
        # The hot path still answers: a webhook of another merchant is accepted.
        status, _ = await _json(
            http, "GET", f"{gw.base_url}/api/v1/merchant", owner["access_token"]
        )
        assert status == 200
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_sockets_are_capped_per_address_and_per_merchant(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, live_max_per_merchant=3, live_max_per_address=4)
    try:
        async with aiohttp.ClientSession() as http:
            a, b = await _owner(gw, http), await _owner(gw, http)
            first = [await _socket(http, gw, a["access_token"]) for _ in range(3)]
            for ws in first:
                assert (await ws.receive_json(timeout=30))["type"] == "ready"
            over = await _socket(http, gw, a["access_token"])
            assert await _closed_with(over) == TOO_MANY  # the merchant's cap
            other = await _socket(http, gw, b["access_token"])
            assert (await other.receive_json(timeout=30))["type"] == "ready"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(gw.base_url.replace("http", "ws") + "/api/v1/live")
            assert refused.value.status == 429  # the address's cap, before any upgrade
            await asyncio.gather(*(ws.close() for ws in [*first, other]))
    finally:
        await gw.close()


async def test_a_socket_ends_on_logout(gw: Gateway, http: aiohttp.ClientSession) -> None:
    owner = await _owner(gw, http)
    ws = await _socket(http, gw, owner["access_token"])
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    status, _ = await _json(
        http,
        "POST",
        f"{gw.base_url}/api/v1/auth/logout",
        owner["access_token"],
        {"refresh_token": owner["refresh_token"]},
    )
    assert status == 204
    assert await _closed_with(ws) == UNAUTHORIZED


@pytest.mark.parametrize("change", ["role", "removal"])
async def test_a_socket_ends_when_its_user_changes(
    gw: Gateway, http: aiohttp.ClientSession, change: str
) -> None:
    owner = await _owner(gw, http)
    user_id, token = await _agent(gw, http, owner["access_token"])
    ws = await _socket(http, gw, token)
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    url = f"{gw.base_url}/api/v1/users/{user_id}"
    if change == "role":
        status, _ = await _json(http, "PATCH", url, owner["access_token"], {"role": "viewer"})
        assert status == 200
    else:
        status, _ = await _json(http, "DELETE", url, owner["access_token"])
        assert status == 204
    assert await _closed_with(ws) == UNAUTHORIZED


async def test_a_socket_ends_when_its_key_is_revoked(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    owner = await _owner(gw, http)
    status, key = await _json(
        http,
        "POST",
        f"{gw.base_url}/api/v1/api-keys",
        owner["access_token"],
        {"name": "integration", "role": "viewer"},
    )
    assert status == 201
    ws = await _socket(http, gw, key["api_key"])
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    status, _ = await _json(
        http, "DELETE", f"{gw.base_url}/api/v1/api-keys/{key['id']}", owner["access_token"]
    )
    assert status == 204
    assert await _closed_with(ws) == UNAUTHORIZED


async def test_a_socket_ends_when_its_token_expires(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    owner = await _owner(gw, http)
    family = secrets.token_hex(6)
    await gw.redis.set(family_key(family), "ok", ex=60)
    now = time.time()
    short = jwt.encode(
        {
            "iss": ISSUER,
            "sub": "u_short",
            "mid": owner["merchant_id"],
            "role": "viewer",
            "fam": family,
            "jti": secrets.token_hex(6),
            "iat": now,
            "exp": int(now) + 3,
            "typ": "access",
        },
        jwt_secret(gw.settings),
        algorithm="HS256",
    )
    ws = await _socket(http, gw, short)
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    assert await _closed_with(ws) == UNAUTHORIZED
