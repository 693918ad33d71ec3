"""Website webchat: a small page and its WebSocket, feeding the same inbox as every channel.

The frames' meaning is the webchat kind's (``connectors/webchat.py``); this module holds the
socket: it attaches it to the reply hub, hands each frame to the kind and the message to intake.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import time

import orjson
from aiohttp import WSMsgType, web

from connectors import webchat
from engine.domain.messages import conversation_key
from engine.http.keys import DEPS, HUB, INTAKE
from engine.http.problems import ProblemError

log = logging.getLogger(__name__)


def _page() -> str:
    return (importlib.resources.files("engine.http") / "static" / "webchat.html").read_text(
        encoding="utf-8"
    )


async def webchat_page(request: web.Request) -> web.Response:
    merchant_id = request.match_info["merchant_id"]
    merchant = await request.app[DEPS].records.merchant(merchant_id)
    if merchant is None:
        raise ProblemError(404, "Not found", "no such store")
    html = (
        _page()
        .replace("{{MERCHANT_ID}}", merchant_id)
        .replace("{{STORE_NAME}}", _escape(str(merchant["name"])))
        .replace("{{LANG}}", str(merchant.get("default_language") or "ar"))
    )
    return web.Response(text=html, content_type="text/html")


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def webchat_socket(request: web.Request) -> web.WebSocketResponse:
    deps = request.app[DEPS]
    merchant_id = request.match_info["merchant_id"]
    if await deps.records.merchant(merchant_id) is None:
        raise ProblemError(404, "Not found", "no such store")
    customer_id = request.query.get("customer", "")
    if not webchat.CUSTOMER_ID.match(customer_id):
        raise ProblemError(400, "Bad customer id", "customer: 8-64 of A-Z a-z 0-9 _ -")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
    await ws.prepare(request)
    hub = request.app[HUB]
    key = conversation_key(merchant_id, webchat.CHANNEL_ID, customer_id)
    hub.attach(key, ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            error = await _handle_frame(request, merchant_id, customer_id, msg.data)
            if error:
                await ws.send_str(orjson.dumps({"type": "error", "message": error}).decode())
    finally:
        hub.detach(key, ws)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _handle_frame(
    request: web.Request, merchant_id: str, customer_id: str, raw: str
) -> str | None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "frames must be JSON"
    message = webchat.KIND.message(merchant_id, customer_id, frame, time.time())
    if isinstance(message, str):
        return message
    await request.app[INTAKE].append(message)
    return None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webchat/{merchant_id}", webchat_page)
    app.router.add_get("/ws/webchat/{merchant_id}", webchat_socket)
