"""Per-address limits count real clients, and nobody can lock an owner out of their account.

Behind nginx every request's TCP peer is nginx: one per-IP bucket held every client, so 300
login attempts from anyone locked every user out, and the per-account lock let a stranger who
knows an email keep that account locked forever. These tests run a real gateway
(``tests/channels/harness.py``) with nginx's address as the trusted proxy and send requests as
nginx forwards them (``X-Forwarded-For`` with the client's address appended).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.channels.harness import Gateway, start_gateway

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
async def proxied(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    g = await start_gateway(
        Path(tmp_path_factory.mktemp("proxied-gw")),
        trusted_proxies=("127.0.0.1/32",),
        login_max_failures=3,
        login_max_per_ip=8,
    )
    yield g
    await g.close()


async def _login(gw: Gateway, email: str, password: str, client: str, spoof: str = "") -> int:
    forwarded = f"{spoof}, {client}" if spoof else client
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gw.base_url}/api/v1/auth/login",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": forwarded},
        ) as r,
    ):
        return r.status


async def _signup(gw: Gateway, client: str) -> str:
    email = f"owner-{secrets.token_hex(4)}@shop.example"
    body = {"merchant_name": "Shop", "email": email, "password": PASSWORD}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gw.base_url}/api/v1/auth/signup", json=body, headers={"X-Forwarded-For": client}
        ) as r,
    ):
        assert r.status == 201, await r.text()
    return email


async def test_each_client_behind_the_proxy_has_its_own_budget(proxied: Gateway) -> None:
    email = f"nobody-{secrets.token_hex(4)}@shop.example"
    statuses = [await _login(proxied, email, "wrong-password", "198.51.100.7") for _ in range(9)]
    assert statuses[-1] == 429
    # Another client, same proxy (same TCP peer): not locked by the first one's attempts.
    assert await _login(proxied, f"x{email}", "wrong-password", "198.51.100.8") == 401


async def test_a_spoofed_forwarded_hop_is_not_believed(proxied: Gateway) -> None:
    """The client writes what it likes to the left of nginx's hop: only nginx's hop counts."""
    email = f"nobody-{secrets.token_hex(4)}@shop.example"
    for n in range(9):
        status = await _login(proxied, email, "wrong", "198.51.100.9", spoof=f"203.0.113.{n}")
    assert status == 429


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, login_max_per_ip=4)  # no trusted proxies
    try:
        email = f"nobody-{secrets.token_hex(4)}@shop.example"
        last = [await _login(gw, email, "wrong", f"203.0.113.{n}") for n in range(6)][-1]
    finally:
        await gw.close()
    assert last == 429  # every attempt counted for the real peer, whatever it claimed


async def test_a_stranger_cannot_lock_a_known_email(proxied: Gateway) -> None:
    owner_address = "192.0.2.10"
    email = await _signup(proxied, owner_address)
    assert await _login(proxied, email, PASSWORD, owner_address) == 200  # a known address now
    # A stranger guesses from many addresses: each address is stopped after 3 failures...
    stranger = [await _login(proxied, email, "guess", "198.51.100.50") for _ in range(4)]
    assert stranger[-1] == 429
    # ...and a flood from 40 addresses locks the account for addresses it never used...
    for n in range(40):
        await _login(proxied, email, "guess", f"198.51.101.{n}")
    assert await _login(proxied, email, PASSWORD, "198.51.102.1") == 429
    # ...but never for its owner, from the address they log in from.
    assert await _login(proxied, email, PASSWORD, owner_address) == 200
