"""The fake Bot API over real loopback HTTP, driven by the real connector where it matters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from connectors.base import Delivered, PermanentFailure, ProviderCall, RetryLater, SendOutcome
from connectors.telegram import (
    build_delete_webhook,
    build_send_message,
    build_set_webhook,
    interpret_response,
    parse_update,
)
from engine.domain.messages import OutboundReply, ProductCard
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeCall, FakeTelegram, make_update

TOKEN = DEFAULT_TOKEN


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _post(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=payload) as response:
        return response.status, orjson.loads(await response.read())


async def _send(session: aiohttp.ClientSession, call: ProviderCall) -> SendOutcome:
    async with session.request(call.method, call.url, json=call.json) as response:
        return interpret_response(response.status, await response.read())


def _reply(text: str, chat_id: int, products: tuple[ProductCard, ...] = ()) -> OutboundReply:
    return OutboundReply(
        outbox_id="o",
        merchant_id="m",
        channel_id="c",
        channel_kind="telegram",
        customer_id=str(chat_id),
        text=text,
        intent="answer",
        handoff=False,
        in_reply_to=("1",),
        received_at=0.0,
        products=products,
    )


async def test_start_returns_loopback_url_and_get_me(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert not fake.base_url.endswith(":0")
    status, body = await _post(session, f"{fake.base_url}/bot{TOKEN}/getMe", {})
    assert status == 200
    assert body["ok"] is True
    assert body["result"]["is_bot"] is True
    assert body["result"]["id"] == 123456789


async def test_send_message_roundtrip_through_connector(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    shoe = ProductCard(sku="s", title="Shoe", price=10.0, currency="USD", url="https://x/s")
    [call] = build_send_message(fake.base_url, TOKEN, _reply("hi", 42, (shoe,)))
    before = time.monotonic()
    assert await _send(session, call) == Delivered("1")
    assert await _send(session, call) == Delivered("2")  # per-chat increasing ids
    assert [m["text"] for m in fake.sent_to(42)] == [call.json["text"]] * 2
    assert fake.sent_to("42")[0]["reply_markup"]["inline_keyboard"][0][1]["url"] == "https://x/s"
    recorded = fake.calls[0]
    assert (recorded.token, recorded.method, recorded.status) == (TOKEN, "sendMessage", 200)
    assert recorded.json == call.json
    assert before <= recorded.received_at <= time.monotonic()


async def test_long_reply_arrives_split_and_in_order(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    text = "\n".join(f"line {i:05d} " + "x" * 60 for i in range(200))
    calls = build_send_message(fake.base_url, TOKEN, _reply(text, 7))
    assert len(calls) > 1
    for call in calls:
        assert isinstance(await _send(session, call), Delivered)
    received = [m["text"] for m in fake.sent_to(7)]
    assert "\n".join(received) == text


async def test_unknown_token_is_401(fake: FakeTelegram, session: aiohttp.ClientSession) -> None:
    status, body = await _post(
        session, f"{fake.base_url}/bot999:nope/sendMessage", {"chat_id": 1, "text": "x"}
    )
    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert fake.sent_to(1) == []
    [call] = build_send_message(fake.base_url, "999:nope", _reply("x", 1))
    outcome = await _send(session, call)
    assert isinstance(outcome, PermanentFailure)
    assert "invalid bot token" in outcome.reason
    assert "999:nope" not in outcome.reason


async def test_fail_next_429_with_retry_after(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(2, 429, retry_after=3)
    [call] = build_send_message(fake.base_url, TOKEN, _reply("hi", 5))
    status, body = await _post(session, call.url, call.json)
    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    outcome = await _send(session, call)
    assert isinstance(outcome, RetryLater)
    assert outcome.after_s == 3.0
    assert await _send(session, call) == Delivered("1")  # only the next 2 failed
    assert [c.status for c in fake.calls] == [429, 429, 200]
    assert len(fake.sent_to(5)) == 1


async def test_fail_next_is_per_method_and_5xx_retries(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(1, 502)
    status, _ = await _post(session, f"{fake.base_url}/bot{TOKEN}/getMe", {})
    assert status == 200  # failures target sendMessage by default
    [call] = build_send_message(fake.base_url, TOKEN, _reply("hi", 5))
    outcome = await _send(session, call)
    assert isinstance(outcome, RetryLater)
    assert outcome.after_s is None
    fake.fail_next(1, 500, method=None)
    status, _ = await _post(session, f"{fake.base_url}/bot{TOKEN}/getMe", {})
    assert status == 500


async def test_blocked_chat_is_403_and_unreachable(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    fake.block_chat(42)
    [call] = build_send_message(fake.base_url, TOKEN, _reply("hi", 42))
    status, body = await _post(session, call.url, call.json)
    assert status == 403
    assert body["description"] == "Forbidden: bot was blocked by the user"
    outcome = await _send(session, call)
    assert outcome == PermanentFailure(
        reason="telegram 403: Forbidden: bot was blocked by the user", unreachable=True
    )
    [other] = build_send_message(fake.base_url, TOKEN, _reply("hi", 43))
    assert isinstance(await _send(session, other), Delivered)
    fake.forget_chat(44)
    [missing] = build_send_message(fake.base_url, TOKEN, _reply("hi", 44))
    outcome = await _send(session, missing)
    assert isinstance(outcome, PermanentFailure)
    assert "chat not found" in outcome.reason
    assert not outcome.unreachable


async def test_validation_like_telegram(fake: FakeTelegram, session: aiohttp.ClientSession) -> None:
    url = f"{fake.base_url}/bot{TOKEN}/sendMessage"
    assert (await _post(session, url, {"chat_id": 1, "text": " "}))[0] == 400
    assert (await _post(session, url, {"chat_id": 1, "text": "x" * 4097}))[0] == 400
    bad_button = {"inline_keyboard": [[{"text": "b", "url": "javascript:x"}]]}
    status, body = await _post(
        session, url, {"chat_id": 1, "text": "x", "reply_markup": bad_button}
    )
    assert (status, body["description"]) == (400, "Bad Request: BUTTON_URL_INVALID")
    async with session.post(url, data=b"{nope", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    status, _ = await _post(session, f"{fake.base_url}/bot{TOKEN}/noSuchMethod", {})
    assert status == 404
    assert fake.sent_to(1) == []


async def test_wait_for_messages_wakes_on_delivery(
    fake: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        for text in ("one", "two"):
            [call] = build_send_message(fake.base_url, TOKEN, _reply(text, 9))
            await _send(session, call)

    task = asyncio.create_task(send_later())
    started = time.monotonic()
    messages = await fake.wait_for_messages(9, 2, timeout=5.0)
    assert time.monotonic() - started < 2.0
    assert [m["text"] for m in messages] == ["one", "two"]
    await task
    # Already satisfied: returns at once.
    assert len(await fake.wait_for_messages("9", 1, timeout=0.01)) == 2


async def test_wait_for_messages_times_out_with_count(fake: FakeTelegram) -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        await fake.wait_for_messages(1234, 1, timeout=0.05)


async def test_delay_and_on_message_hook(session: aiohttp.ClientSession) -> None:
    seen: list[FakeCall] = []

    async def hook(call: FakeCall) -> None:
        seen.append(call)

    async with FakeTelegram(on_message=hook) as fake:
        fake.set_delay(0.1)
        [call] = build_send_message(fake.base_url, TOKEN, _reply("hi", 3))
        started = time.monotonic()
        assert await _send(session, call) == Delivered("1")
        assert time.monotonic() - started >= 0.1
        assert [c.json["text"] for c in seen] == ["hi"]
        fake.reset()
        assert fake.calls == []
        assert fake.sent_to(3) == []


async def test_webhook_management(fake: FakeTelegram, session: aiohttp.ClientSession) -> None:
    set_call = build_set_webhook(fake.base_url, TOKEN, "https://hooks.example/tg", "s_1-x")
    assert await _send(session, set_call) == Delivered("")
    assert fake.webhooks[TOKEN]["secret_token"] == "s_1-x"
    assert await _send(session, build_delete_webhook(fake.base_url, TOKEN)) == Delivered("")
    assert TOKEN not in fake.webhooks
    status, body = await _post(
        session, set_call.url, {"url": "https://h", "secret_token": "bad token!"}
    )
    assert status == 400
    assert "secret token" in body["description"]


def test_make_update_parses() -> None:
    update = make_update(500, 77, "مرحبا", first_name="Layla")
    msg = parse_update(orjson.dumps(update), merchant_id="m", channel_id="c", received_at=1.0)
    assert msg is not None
    assert (msg.message_id, msg.customer_id, msg.text, msg.customer_name) == (
        "500",
        "77",
        "مرحبا",
        "Layla",
    )
