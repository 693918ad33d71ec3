"""What agents see of a real Telegram conversation: live events and the message record,
through a signed webhook, the conversation hosts and the fake Telegram, including a takeover."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest

from engine.adapters.records import conversation_id
from tests.api.test_admin_api import call
from tests.conftest import Engine, Store
from tests.fakes.fake_telegram import FakeTelegram

pytestmark = pytest.mark.integration

_chats = itertools.count(8_800_000)


async def _next_message(ws: aiohttp.ClientWebSocketResponse, cid: str, direction: str) -> Any:
    """The next ``message.created`` of this conversation in this direction (others skipped)."""
    while True:
        event = await ws.receive_json(timeout=60)
        data = event.get("data") or {}
        if (
            event["type"] == "message.created"
            and data.get("conversation_id") == cid
            and data.get("direction") == direction
        ):
            return data


async def test_agents_see_the_conversation_live_and_nothing_said_in_a_takeover_is_lost(
    engine: Engine, demo_store: Store, fake_telegram: FakeTelegram
) -> None:
    key = demo_store.api_key
    channel = await engine.connect_telegram(key, fake_telegram.base_url)
    chat = next(_chats)
    cid = conversation_id(f"{demo_store.merchant_id}:{channel[0]}:{chat}")
    url = engine.base_url.replace("http", "ws") + "/api/v1/live"
    async with engine.session.ws_connect(url) as ws:
        await ws.send_json({"type": "auth", "token": key})
        assert (await ws.receive_json(timeout=10))["type"] == "ready"

        # 1. The customer's message and the bot's reply reach the agent's socket.
        await engine.say(channel, chat, "hello")
        heard = await _next_message(ws, cid, "in")
        assert heard["text"] == "hello" and heard["answered"] is True
        answer = await _next_message(ws, cid, "out")
        sent = await fake_telegram.wait_for_messages(chat, 1, timeout=60)
        assert answer["text"] and sent[0]["text"].startswith(answer["text"])

        # 2. Takeover: the customer's message is recorded and pushed live, the bot is silent.
        status, conv, _ = await call(engine, "POST", f"/api/v1/conversations/{cid}/takeover", key)
        assert status == 200 and conv["paused"]
        await engine.say(channel, chat, "is a human there?")
        silent = await _next_message(ws, cid, "in")
        assert silent["text"] == "is a human there?" and silent["answered"] is False
        status, page, _ = await call(
            engine, "GET", f"/api/v1/conversations/{cid}/messages?limit=100", key
        )
        assert status == 200
        recorded = [m for m in page["items"] if m["text"] == "is a human there?"]
        assert [(m["direction"], m["answered"]) for m in recorded] == [("in", False)]

        # 3. The agent's reply goes out through Telegram.
        status, _, _ = await call(
            engine,
            "POST",
            f"/api/v1/conversations/{cid}/messages",
            key,
            {"text": "Hi, Huda here. How can I help?"},
        )
        assert status == 201
        sent = await fake_telegram.wait_for_messages(chat, 2, timeout=60)
        assert sent[1]["text"] == "Hi, Huda here. How can I help?"

        # 4. Hand back: the bot answers the next message again.
        status, conv, _ = await call(engine, "POST", f"/api/v1/conversations/{cid}/handback", key)
        assert status == 200 and not conv["paused"]
        await engine.say(channel, chat, "thanks, do you ship to Jeddah?")
        assert (await _next_message(ws, cid, "in"))["answered"] is True
        again = await _next_message(ws, cid, "out")
        sent = await fake_telegram.wait_for_messages(chat, 3, timeout=60)
        assert sent[2]["text"].startswith(again["text"])

    # The customer got: the bot's hello, the agent, the bot's answer; never a reply to the
    # message sent during the takeover (its turn came before the last one in the inbox).
    assert len(fake_telegram.sent_to(chat)) == 3
    for _ in range(100):  # records are written off the reply path
        _, page, _ = await call(
            engine, "GET", f"/api/v1/conversations/{cid}/messages?limit=100", key
        )
        if len(page["items"]) >= 6:
            break
        await asyncio.sleep(0.05)
    inbound = sorted((m["at"], m["text"]) for m in page["items"] if m["direction"] == "in")
    assert [text for _, text in inbound] == [
        "hello",
        "is a human there?",
        "thanks, do you ship to Jeddah?",
    ]
    outbound = [m for m in page["items"] if m["direction"] == "out"]
    assert len(outbound) == 3 and sum(m["intent"] == "agent" for m in outbound) == 1
