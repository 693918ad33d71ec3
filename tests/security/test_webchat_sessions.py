"""Attacks on the webchat: who a customer is comes only from a token the engine signed.

Forged, foreign, expired and admin tokens are refused, a bare ``?customer=`` is refused, pages
of sites the merchant did not allow cannot open sessions or sockets, and the per-IP and
per-merchant limits hold (on a second gateway app with tight limits, same Redis and stores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import orjson
import pytest

from engine.http.webchat_tokens import AUDIENCE, webchat_secret
from tests.conftest import Engine
from tests.gateways import second_gateway
from tests.webchat_client import new_session, next_frame, socket_url

pytestmark = pytest.mark.integration
SHOP = "https://shop.example.com"
EVIL = "https://evil.example.net"


async def _problem(engine: Engine, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with engine.session.get(url, **kw) as r:
        assert r.content_type == "application/problem+json", await r.text()
        body: dict[str, Any] = await r.json()
        return r.status, body


async def test_session_is_issued_and_renewed_for_the_same_customer(engine: Engine) -> None:
    merchant_id, _ = await engine.create_merchant("Sessions", "en")
    first = await new_session(engine.session, engine.base_url, merchant_id)
    assert first["customer_id"] and first["token"] and first["renewed"] is False
    assert first["merchant"]["name"] == "Sessions"
    again = await new_session(engine.session, engine.base_url, merchant_id, first["token"])
    assert again["customer_id"] == first["customer_id"] and again["renewed"] is True
    other = await new_session(engine.session, engine.base_url, merchant_id)
    assert other["customer_id"] != first["customer_id"]


async def test_bare_customer_id_is_refused(engine: Engine) -> None:
    merchant_id, _ = await engine.create_merchant("Bare", "en")
    status, body = await _problem(
        engine, f"{engine.base_url}/ws/webchat/{merchant_id}?customer=victim12345"
    )
    assert status == 400 and body["title"] == "Session required"
    status, body = await _problem(engine, f"{engine.base_url}/ws/webchat/{merchant_id}")
    assert status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await engine.session.ws_connect(
            f"{engine.base_url}/ws/webchat/{merchant_id}?customer=victim12345"
        )
    assert refused.value.status == 400


async def test_forged_foreign_expired_and_admin_tokens_are_refused(engine: Engine) -> None:
    mine, api_key = await engine.create_merchant("Mine", "en")
    theirs, _ = await engine.create_merchant("Theirs", "en")
    session = await new_session(engine.session, engine.base_url, theirs)
    secret = webchat_secret(engine.runtime.settings)
    now = int(time.time())
    claims = {"sub": "victim", "mid": mine, "aud": AUDIENCE, "typ": "webchat", "iat": now}
    forged = jwt.encode({**claims, "exp": now + 60}, "x" * 48, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": now - 60}, secret, algorithm="HS256")
    wrong_type = jwt.encode({**claims, "exp": now + 60, "typ": "access"}, secret, algorithm="HS256")
    header, payload, sig = session["token"].split(".")
    tampered = f"{header}.{payload}.{sig[:-2]}{'AA' if not sig.endswith('AA') else 'BB'}"
    async with engine.session.post(
        f"{engine.base_url}/api/v1/auth/signup",
        json={"merchant_name": "Admin", "email": f"a{now}@x.example.com", "password": "pw-123456"},
    ) as r:
        access = (await r.json())["access_token"]
    for token in (session["token"], forged, expired, wrong_type, tampered, access, api_key):
        status, body = await _problem(engine, socket_url(engine.base_url, mine, token))
        assert status == 401, (token, body)


async def test_a_session_only_hears_its_own_customer(engine: Engine) -> None:
    merchant_id, _ = await engine.create_merchant("Private", "en")
    alice = await new_session(engine.session, engine.base_url, merchant_id)
    mallory = await new_session(engine.session, engine.base_url, merchant_id)
    base = engine.base_url
    async with (
        engine.session.ws_connect(socket_url(base, merchant_id, alice["token"])) as a,
        engine.session.ws_connect(socket_url(base, merchant_id, mallory["token"])) as m,
    ):
        await next_frame(a, "history", 10)
        await next_frame(m, "history", 10)
        await a.send_json({"type": "message", "id": "a1", "text": "hello"})
        assert (await next_frame(a, "reply"))["text"]
        await m.send_json({"type": "message", "id": "m1", "text": "hi"})
        reply = await next_frame(m, "reply")  # Mallory's own reply, not Alice's
        assert reply["id"].startswith("out:") and reply["text"]
    heard: list[str] = []
    for _ in range(50):  # the turn's records land just after its reply is pushed
        async with engine.session.ws_connect(socket_url(base, merchant_id, mallory["token"])) as m:
            history = await next_frame(m, "history", 10)
        heard = [x["text"] for x in history["messages"] if x["direction"] == "in"]
        if heard:
            break
        await asyncio.sleep(0.2)
    assert heard == ["hi"]


async def test_origins_are_checked_on_sessions_and_sockets(engine: Engine) -> None:
    merchant_id, api_key = await engine.create_merchant("Origins", "en")
    url = f"{engine.base_url}/webchat/{merchant_id}/session"
    async with engine.session.post(url, json={}, headers={"Origin": SHOP}) as r:
        assert r.status == 403 and r.content_type == "application/problem+json"
    async with engine.session.patch(
        f"{engine.base_url}/api/v1/merchant",
        json={"allowed_origins": [SHOP], "widget_color": "#aa3355", "widget_greeting": "Hey!"},
        headers={"Authorization": f"Bearer {api_key}"},
    ) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["allowed_origins"] == [SHOP]
    async with engine.session.options(
        url, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    ) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == SHOP
    session = await new_session(engine.session, engine.base_url, merchant_id, origin=SHOP)
    assert session["merchant"]["color"] == "#aa3355"
    assert session["merchant"]["greeting"] == "Hey!"
    async with engine.session.post(url, json={}, headers={"Origin": EVIL}) as r:
        assert r.status == 403
    own = await new_session(engine.session, engine.base_url, merchant_id, origin=engine.base_url)
    assert own["token"]
    ws = socket_url(engine.base_url, merchant_id, session["token"])
    status, body = await _problem(engine, ws, headers={"Origin": EVIL})
    assert status == 403 and body["title"] == "Origin not allowed"
    async with engine.session.ws_connect(ws, headers={"Origin": SHOP}) as sock:
        assert (await next_frame(sock, "history", 10))["type"] == "history"


async def test_profile_rejects_bad_widget_fields(engine: Engine) -> None:
    _, api_key = await engine.create_merchant("Bad fields", "en")
    for body in (
        {"allowed_origins": ["https://shop.example.com/path"]},
        {"allowed_origins": ["javascript:alert(1)"]},
        {"widget_color": "red"},
        {"widget_greeting": "x" * 301},
    ):
        async with engine.session.patch(
            f"{engine.base_url}/api/v1/merchant",
            json=body,
            headers={"Authorization": f"Bearer {api_key}"},
        ) as r:
            assert r.status == 422, body
            assert (await r.json())["errors"]


# -- limits, on a gateway with tight ones ----------------------------------------------------
@pytest.fixture(scope="module")
async def tight(engine: Engine) -> AsyncIterator[str]:
    async with second_gateway(
        engine.runtime,
        "gateway-webchat-tight",
        webchat_sockets_per_ip=3,
        webchat_sockets_per_merchant=2,
        webchat_frames_per_ip=4,
        webchat_frames_per_merchant=6,
        webchat_sessions_per_ip=3,
        webchat_window_s=3600,
    ) as url:
        yield url


def _client(ip: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0)))


async def test_socket_limits_per_merchant_and_per_ip(engine: Engine, tight: str) -> None:
    a, _ = await engine.create_merchant("Sockets A", "en")
    b, _ = await engine.create_merchant("Sockets B", "en")
    async with _client("127.0.0.5") as c:
        token_a = (await new_session(c, tight, a))["token"]
        token_b = (await new_session(c, tight, b))["token"]
        open_ = [await c.ws_connect(socket_url(tight, a, token_a)) for _ in range(2)]
        async with c.get(socket_url(tight, a, token_a)) as r:  # the store's third socket
            assert r.status == 429 and "store" in (await r.json())["detail"]
        open_.append(await c.ws_connect(socket_url(tight, b, token_b)))
        async with c.get(socket_url(tight, b, token_b)) as r:  # this address's fourth socket
            assert r.status == 429 and "address" in (await r.json())["detail"]
        await open_.pop().close()
        open_.append(await c.ws_connect(socket_url(tight, b, token_b)))  # a slot came back
        for ws in open_:
            await ws.close()


async def test_session_limit_per_ip(engine: Engine, tight: str) -> None:
    merchant_id, _ = await engine.create_merchant("Sessions limit", "en")
    async with _client("127.0.0.6") as c:
        statuses = []
        for _ in range(4):
            async with c.post(f"{tight}/webchat/{merchant_id}/session", json={}) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert r.headers["Retry-After"]
        assert statuses == [201, 201, 201, 429]


async def test_frame_limits_per_ip_and_per_merchant(engine: Engine, tight: str) -> None:
    merchant_id, _ = await engine.create_merchant("Frames", "en")

    async def send(ip: str, count: int) -> list[str]:
        async with _client(ip) as c:
            token = (await new_session(c, tight, merchant_id))["token"]
            async with c.ws_connect(socket_url(tight, merchant_id, token)) as ws:
                await next_frame(ws, "history", 10)
                outcomes = []
                for i in range(count):
                    await ws.send_json({"type": "message", "id": f"f{ip[-1]}{i}", "text": "hi"})
                    while True:
                        frame = await next_frame_any(ws)
                        if frame["type"] in ("ack", "error"):
                            outcomes.append(frame.get("code") or frame["type"])
                            break
                return outcomes

    assert await send("127.0.0.7", 5) == ["ack"] * 4 + ["rate_limited"]  # per IP
    # A frame the address was refused spent nothing of the store's 6: two more, then no.
    assert await send("127.0.0.8", 3) == ["ack", "ack", "rate_limited"]


async def test_frames_come_at_a_steady_rate_not_a_whole_window_at_once(engine: Engine) -> None:
    """60 frames an hour is one a minute after a burst of 3: a fixed window let an address
    send all 60 in its first second (and 8 addresses 960 turns on one store at once)."""
    async with second_gateway(
        engine.runtime,
        "gateway-webchat-smooth",
        webchat_frames_per_ip=60,
        webchat_frame_burst_per_ip=3,
        webchat_window_s=3600,
    ) as base:
        merchant_id, _ = await engine.create_merchant("Smooth", "en")
        async with _client("127.0.0.11") as c:
            token = (await new_session(c, base, merchant_id))["token"]
            async with c.ws_connect(socket_url(base, merchant_id, token)) as ws:
                await next_frame(ws, "history", 10)
                outcomes = []
                for i in range(5):
                    await ws.send_json({"type": "message", "id": f"s{i}", "text": "hi"})
                    while True:
                        frame = await next_frame_any(ws)
                        if frame["type"] in ("ack", "error"):
                            outcomes.append(frame.get("code") or frame["type"])
                            break
    assert outcomes == ["ack"] * 3 + ["rate_limited"] * 2


async def test_a_socket_writing_through_its_refusals_is_closed(engine: Engine) -> None:
    """Past a run of refused frames the socket is closed 4429; what was admitted before is
    kept and answered, and the customer may connect again."""
    from engine.http import webchat as webchat_http

    async with second_gateway(
        engine.runtime,
        "gateway-webchat-flood",
        webchat_frames_per_ip=60,
        webchat_frame_burst_per_ip=2,
        webchat_window_s=3600,
    ) as base:
        merchant_id, _ = await engine.create_merchant("Flooded", "en")
        async with _client("127.0.0.12") as c:
            token = (await new_session(c, base, merchant_id))["token"]
            async with c.ws_connect(socket_url(base, merchant_id, token)) as ws:
                await next_frame(ws, "history", 10)
                for i in range(2 + webchat_http.MAX_REFUSED_IN_A_ROW + 5):
                    await ws.send_json({"type": "message", "id": f"f{i}", "text": f"hello {i}"})
                outcomes: list[str] = []

                async def until_closed() -> None:
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        frame = orjson.loads(msg.data)
                        if frame["type"] in ("ack", "error"):
                            outcomes.append(frame.get("code") or frame["type"])

                await asyncio.wait_for(until_closed(), 30)  # an open socket fails here
                assert ws.close_code == 4429
            refused = ["rate_limited"] * webchat_http.MAX_REFUSED_IN_A_ROW
            assert outcomes == ["ack", "ack", *refused]
            # The two admitted messages reach the conversation's history (recorded off the
            # reply path, so a new socket may have to look again); the refused ones never do.
            deadline = time.monotonic() + 60
            while True:
                async with c.ws_connect(socket_url(base, merchant_id, token)) as ws:
                    history = await next_frame(ws, "history", 10)
                inbound = [m["text"] for m in history["messages"] if m["direction"] == "in"]
                if len(inbound) >= 2 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert inbound == ["hello 0", "hello 1"]


async def next_frame_any(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    frame: dict[str, Any] = await ws.receive_json(timeout=30)
    return frame


async def test_x_real_ip_is_believed_only_from_trusted_proxies(engine: Engine) -> None:
    """Behind nginx each customer keeps their own limits; a direct client cannot pick one."""
    from engine.config import Settings

    assert Settings.from_env({"KALEEM_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.9"}).trusted_proxies
    with pytest.raises(ValueError):
        Settings.from_env({"KALEEM_TRUSTED_PROXIES": "not-a-network"})
    async with second_gateway(
        engine.runtime,
        "gateway-proxied",
        trusted_proxies=("127.0.0.10/32",),
        webchat_sessions_per_ip=1,
    ) as base:
        merchant_id, _ = await engine.create_merchant("Proxied", "en")
        url = f"{base}/webchat/{merchant_id}/session"
        async with _client("127.0.0.10") as nginx:  # two customers behind the proxy
            for customer in ("198.51.100.1", "198.51.100.2"):
                async with nginx.post(url, json={}, headers={"X-Forwarded-For": customer}) as r:
                    assert r.status == 201
            async with nginx.post(url, json={}, headers={"X-Forwarded-For": "198.51.100.1"}) as r:
                assert r.status == 429  # the first customer's second session
        async with _client("127.0.0.11") as direct:  # not a proxy: the header is ignored
            for status in (201, 429):
                async with direct.post(
                    url, json={}, headers={"X-Forwarded-For": "203.0.113.7"}
                ) as r:
                    assert r.status == status
