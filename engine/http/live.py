"""Live updates for agents over a WebSocket, fanned out through Redis pub/sub.

Every gateway replica publishes the events of its own API calls on the merchant's channel and
relays that channel to its sockets, so an agent sees what a colleague did on another replica;
the conversation hosts publish customer messages, bot replies and cart changes on the same
channel when a turn commits (``engine.services.projections``).
Browsers cannot set headers on a WebSocket, so the socket authenticates with its first frame
(``{"type": "auth", "token": "<access token or API key>"}``) unless an Authorization header
was sent; the token never goes in the URL (URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from engine.http.auth import Caller
from engine.http.context import API, Api
from engine.http.problems import ProblemError
from engine.http.routing import Ctx
from engine.services import live_events

log = logging.getLogger(__name__)
AUTH_TIMEOUT_S = 5.0
MAX_FRAME = 4096


async def publish(api: Api, merchant_id: str, kind: str, data: dict[str, Any]) -> None:
    """Best effort: a lost live event only delays a screen refresh, never loses data."""
    await live_events.publish(api.deps.redis, merchant_id, kind, data)


class _HeaderRequest:
    """Lets ``MerchantAuth`` check a token that arrived in a frame, like a header."""

    def __init__(self, request: web.Request, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.method = request.method
        self.path = request.path


async def _authenticate(request: web.Request, ws: web.WebSocketResponse) -> Caller | None:
    auth = request.app[API].auth
    try:
        if request.headers.get("Authorization"):
            return await auth.require_merchant(request)
        msg = await asyncio.wait_for(ws.receive(), timeout=AUTH_TIMEOUT_S)
        if msg.type != WSMsgType.TEXT or len(msg.data) > MAX_FRAME:
            return None
        frame = orjson.loads(msg.data)
        token = frame.get("token") if isinstance(frame, dict) else None
        if frame.get("type") != "auth" or not isinstance(token, str) or not token:
            return None
        return await auth.require_merchant(_HeaderRequest(request, token))  # type: ignore[arg-type]
    except (ProblemError, TimeoutError, orjson.JSONDecodeError, AttributeError):
        return None


async def live(ctx: Ctx) -> web.StreamResponse:
    request = ctx.request
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ProblemError(426, "Upgrade required", "connect with a WebSocket")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    caller = await _authenticate(request, ws)
    if caller is None:
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    await ws.send_json({"type": "ready", "merchant_id": caller.merchant_id})
    pubsub = request.app[API].deps.redis.pubsub()
    await pubsub.subscribe(live_events.channel(caller.merchant_id))

    async def relay() -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                await ws.send_str(data.decode() if isinstance(data, bytes) else str(data))

    task = asyncio.create_task(relay())
    try:
        async for msg in ws:  # agents only listen; reading keeps the close handshake working
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
    return ws
