"""The root API key made with a merchant can be rotated, and the old one dies with it.

The root key (``POST /api/v1/merchants``, or made at signup) acts as an admin for every server
integration, and there was no way to replace it: a leaked root key worked forever. These tests
use a real gateway (``tests/channels/harness.py``), real Redis and the SQLite record store.
"""

from __future__ import annotations

import asyncio
import secrets

import aiohttp

from engine.http.live import UNAUTHORIZED
from tests.channels.harness import OPERATOR, Gateway, gateway_fixture
from tests.gateways import api_call

PASSWORD = "correct horse battery"
ROTATE = "/api/v1/api-keys/root/rotate"


gw = gateway_fixture("root-key-gw")


async def _merchant(gw: Gateway, http: aiohttp.ClientSession) -> tuple[str, str]:
    """(merchant id, root key) as the operator creates them."""
    status, out = await api_call(
        http,
        "POST",
        f"{gw.base_url}/api/v1/merchants",
        OPERATOR,
        {"name": "Root shop", "default_language": "en"},
    )
    assert status == 201, out
    return str(out["id"]), str(out["api_key"])


async def _owner_of(gw: Gateway, http: aiohttp.ClientSession, merchant_id: str) -> tuple[str, str]:
    """(owner access token, admin access token) of users added to an operator-made merchant."""
    tokens = []
    for role in ("owner", "admin"):
        status, invited = await api_call(
            http,
            "POST",
            f"{gw.base_url}/api/v1/users",
            OPERATOR,
            {"email": f"{role}-{secrets.token_hex(4)}@shop.example", "role": role},
            {"X-Kaleem-Merchant": merchant_id},
        )
        assert status == 201, invited
        status, pair = await api_call(
            http,
            "POST",
            f"{gw.base_url}/api/v1/auth/accept-invite",
            body={"invite_token": invited["invite_token"], "password": PASSWORD},
        )
        assert status == 200, pair
        tokens.append(str(pair["access_token"]))
    return tokens[0], tokens[1]


async def test_the_owner_rotates_the_root_key_and_the_old_one_is_refused(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    merchant_id, old = await _merchant(gw, http)
    owner, _ = await _owner_of(gw, http, merchant_id)
    status, me = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", old)
    assert (status, me["id"]) == (200, merchant_id)  # the old key is now in the gateway's cache

    status, out = await api_call(http, "POST", gw.base_url + ROTATE, owner)
    assert status == 200, out
    new = str(out["api_key"])
    assert new != old and out["masked"] == new[:8] + "…" + new[-4:]

    status, problem = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", old)
    assert status == 401, problem
    status, _ = await api_call(http, "GET", f"{gw.base_url}/api/v1/products", old)
    assert status == 401
    status, me = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", new)
    assert (status, me["id"]) == (200, merchant_id)

    status, audit = await api_call(http, "GET", f"{gw.base_url}/api/v1/audit", owner)
    assert status == 200
    assert "api_key.rotate_root" in [e["action"] for e in audit["items"]]


async def test_only_an_owner_may_rotate_it(gw: Gateway, http: aiohttp.ClientSession) -> None:
    merchant_id, root = await _merchant(gw, http)
    _, admin = await _owner_of(gw, http, merchant_id)
    for token in (admin, root):  # the root key itself acts as an admin
        status, _ = await api_call(http, "POST", gw.base_url + ROTATE, token)
        assert status == 403
    status, _ = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", root)
    assert status == 200  # nothing rotated

    status, out = await api_call(
        http, "POST", gw.base_url + ROTATE, OPERATOR, headers={"X-Kaleem-Merchant": merchant_id}
    )
    assert status == 200, out  # the operator acts as the merchant's owner
    status, _ = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", root)
    assert status == 401


async def test_rotating_one_merchant_leaves_another_alone(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    a, _ = await _merchant(gw, http)
    b, b_key = await _merchant(gw, http)
    status, _ = await api_call(
        http, "POST", gw.base_url + ROTATE, OPERATOR, headers={"X-Kaleem-Merchant": a}
    )
    assert status == 200
    status, me = await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", b_key)
    assert (status, me["id"]) == (200, b)


async def test_concurrent_rotations_leave_exactly_one_working_key(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    merchant_id, _ = await _merchant(gw, http)
    headers = {"X-Kaleem-Merchant": merchant_id}
    results = await asyncio.gather(
        *(api_call(http, "POST", gw.base_url + ROTATE, OPERATOR, headers=headers) for _ in range(6))
    )
    issued = [str(out["api_key"]) for status, out in results if status == 200]
    assert issued and all(status in (200, 409) for status, _ in results)
    working = [
        key
        for key in issued
        if (await api_call(http, "GET", f"{gw.base_url}/api/v1/merchant", key))[0] == 200
    ]
    assert len(working) == 1  # the last rotation's; the others were rotated away or refused


async def test_a_live_socket_on_the_old_root_key_is_closed(
    gw: Gateway, http: aiohttp.ClientSession
) -> None:
    merchant_id, root = await _merchant(gw, http)
    ws = await http.ws_connect(gw.base_url.replace("http", "ws") + "/api/v1/live")
    await ws.send_json({"type": "auth", "token": root})
    assert (await ws.receive_json(timeout=30))["type"] == "ready"
    status, _ = await api_call(
        http, "POST", gw.base_url + ROTATE, OPERATOR, headers={"X-Kaleem-Merchant": merchant_id}
    )
    assert status == 200
    while True:
        msg = await ws.receive(timeout=90)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            assert int(msg.data) == UNAUTHORIZED
            break
        if msg.type == aiohttp.WSMsgType.CLOSED:
            assert ws.close_code == UNAUTHORIZED
            break
