"""A webchat customer as the widget is one: a server-issued session, then the socket."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


async def new_session(
    session: aiohttp.ClientSession,
    base_url: str,
    merchant_id: str,
    token: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    headers = {"Origin": origin} if origin else {}
    body = {"token": token} if token else {}
    async with session.post(
        f"{base_url}/webchat/{merchant_id}/session", json=body, headers=headers
    ) as r:
        assert r.status in (200, 201), await r.text()
        out: dict[str, Any] = await r.json()
        return out


def socket_url(base_url: str, merchant_id: str, token: str) -> str:
    return f"{base_url}/ws/webchat/{merchant_id}?token={token}"


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse, kind: str, wait_s: float = 60
) -> dict[str, Any]:
    """The next frame of one type, skipping the others (history, ack, typing)."""

    async def wait() -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = await ws.receive_json()
            if frame.get("type") == kind:
                return frame

    return await asyncio.wait_for(wait(), wait_s)
