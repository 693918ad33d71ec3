"""A widget that loses its socket re-sends what was not acknowledged, with the same id: the
customer's message is recorded once and answered once, and the history shows each once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Engine
from tests.webchat_client import new_session, next_frame, socket_url

pytestmark = pytest.mark.integration


async def _history(engine: Engine, url: str) -> list[dict[str, Any]]:
    async with engine.session.ws_connect(url) as ws:
        messages: list[dict[str, Any]] = (await next_frame(ws, "history", 10))["messages"]
        return messages


async def test_resend_after_a_lost_socket_is_answered_once(engine: Engine) -> None:
    merchant_id, _ = await engine.create_merchant("Reconnect", "en")
    chat = await new_session(engine.session, engine.base_url, merchant_id)
    url = socket_url(engine.base_url, merchant_id, chat["token"])
    frame = {"type": "message", "id": "lost-1", "text": "hello there"}
    async with engine.session.ws_connect(url) as ws:
        await next_frame(ws, "history", 10)
        await ws.send_json(frame)
    # The socket is gone before the widget read an ack: it sends the same frame again.
    async with engine.session.ws_connect(url) as ws:
        await next_frame(ws, "history", 10)
        await ws.send_json(frame)
        assert (await next_frame(ws, "ack", 30))["id"] == "lost-1"
    await _until(engine, url, lambda h: bool(h) and h[-1]["direction"] == "out")
    async with engine.session.ws_connect(url) as ws:
        await next_frame(ws, "history", 10)
        await ws.send_json({"type": "message", "id": "after-1", "text": "thanks"})
        assert (await next_frame(ws, "ack", 30))["id"] == "after-1"
    # Turns of one conversation run in order: once "thanks" is answered, a second answer to
    # "hello there" would already be in the history.
    history = await _until(
        engine, url, lambda h: h[-1]["direction"] == "out" and h[-2]["id"] == "after-1"
    )
    assert [m["id"] for m in history if m["direction"] == "in"] == ["lost-1", "after-1"]
    assert [m["text"] for m in history if m["direction"] == "in"] == ["hello there", "thanks"]
    assert [m["direction"] for m in history] == ["in", "out", "in", "out"]


async def _until(
    engine: Engine, url: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The history once ``done`` holds for it (a turn's records land just after its reply)."""
    history: list[dict[str, Any]] = []
    for _ in range(200):
        history = await _history(engine, url)
        if len(history) >= 2 and done(history):
            return history
        await asyncio.sleep(0.3)
    return history
