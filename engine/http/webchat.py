"""Website webchat: sessions, the widget's socket and the standalone page, feeding the same
inbox as every channel.

Who a customer is comes from a signed session token (``engine/http/webchat_tokens.py``), never
from the browser's say-so; sites allowed to embed the widget are the merchant's
``allowed_origins`` (plus the engine's own origin); sockets, frames and new sessions are
limited per IP and per merchant. The frames' meaning is the webchat kind's
(``connectors/webchat.py``); this module holds the socket: it attaches it to the reply hub,
sends the history when it opens, acknowledges each message once it is durably in the inbox and
hands it to intake (the message id the widget chose makes a resend after a reconnect a no-op).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import WSMsgType, web

from connectors import webchat
from engine.adapters.records import conversation_id
from engine.adapters.redis.ratelimits import SmoothLimiter
from engine.config import Settings
from engine.domain.messages import conversation_key
from engine.http import static
from engine.http.context import client_ip
from engine.http.keys import DEPS, HUB, INTAKE
from engine.http.limits import RateLimiter, digest
from engine.http.problems import ProblemError, json_response, read_limited
from engine.http.webchat_tokens import InvalidSession, WebchatTokens, webchat_secret
from engine.services.ports import Document

log = logging.getLogger(__name__)

HISTORY_LIMIT = 50
MAX_FRAME = 16 * 1024
SESSION_BODY_LIMIT = 4096
WEBCHAT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SESSION_HEADERS = "Content-Type"


class WebchatGuard:
    """The public surface's limits: open sockets per IP and per merchant (this replica), frames
    at a steady rate with a small burst and new sessions per window (Redis, every replica)."""

    def __init__(self, limiter: RateLimiter, frames: SmoothLimiter, settings: Settings) -> None:
        self._limiter = limiter
        self._frames = frames
        self._s = settings
        self._ip_sockets: Counter[str] = Counter()
        self._merchant_sockets: Counter[str] = Counter()

    def open_socket(self, ip: str, merchant_id: str) -> None:
        if self._ip_sockets[ip] >= self._s.webchat_sockets_per_ip:
            raise ProblemError(429, "Too many chat connections", "from this address")
        if self._merchant_sockets[merchant_id] >= self._s.webchat_sockets_per_merchant:
            raise ProblemError(429, "Too many chat connections", "for this store")
        self._ip_sockets[ip] += 1
        self._merchant_sockets[merchant_id] += 1

    def close_socket(self, ip: str, merchant_id: str) -> None:
        for counter, key in ((self._ip_sockets, ip), (self._merchant_sockets, merchant_id)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    async def frame_allowed(self, ip: str, merchant_id: str) -> bool:
        s = self._s
        window = float(s.webchat_window_s)
        return await self._frames.admit(
            [
                (
                    "ip",
                    digest(ip),
                    s.webchat_frames_per_ip / window,
                    min(s.webchat_frame_burst_per_ip, s.webchat_frames_per_ip),
                ),
                (
                    "merchant",
                    merchant_id,
                    s.webchat_frames_per_merchant / window,
                    min(s.webchat_frame_burst_per_merchant, s.webchat_frames_per_merchant),
                ),
            ]
        )

    async def check_session(self, ip: str) -> None:
        verdict = await self._limiter.hit(
            [("wcs-ip:" + digest(ip), self._s.webchat_sessions_per_ip)]
        )
        if not verdict.allowed:
            raise ProblemError(
                429,
                "Too many chat sessions",
                f"retry in {verdict.reset_s} s",
                retry_after=verdict.reset_s,
            )


TOKENS = web.AppKey("webchat_tokens", WebchatTokens)
GUARD = web.AppKey("webchat_guard", WebchatGuard)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _own_origins(request: web.Request) -> set[str]:
    """The engine's pages: its public URL, and the host this request was addressed to."""
    settings = request.app[DEPS].settings
    return {_origin_of(settings.base_url), f"{request.scheme}://{request.host}".lower()}


def _check_origin(request: web.Request, merchant: Document) -> str | None:
    """The request's Origin when a browser sent one, refused unless the merchant allows it.

    Browsers always send Origin on a cross-site POST and on every WebSocket; a client that is
    not a browser can claim any origin, so this stops other sites' pages, not scripts (the
    session token and the limits do that).
    """
    origin = (request.headers.get("Origin") or "").lower().rstrip("/")
    if not origin:
        return None
    allowed = {str(o).lower() for o in merchant.get("allowed_origins") or []}
    if origin in allowed or origin in _own_origins(request):
        return origin
    raise ProblemError(
        403,
        "Origin not allowed",
        "add this site to the store's allowed_origins (PATCH /api/v1/merchant)",
    )


async def _merchant(request: web.Request) -> Document:
    merchant_id = request.match_info["merchant_id"]
    if len(merchant_id) > 64:
        raise ProblemError(404, "Not found", "no such store")
    merchant = await request.app[DEPS].records.merchant(merchant_id)
    if merchant is None:
        raise ProblemError(404, "Not found", "no such store")
    return merchant


def _cors(origin: str | None, response: web.StreamResponse) -> web.StreamResponse:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def widget_profile(merchant: Document) -> dict[str, Any]:
    """What the widget shows before the first message: public fields of the profile only."""
    return {
        "id": merchant["_id"],
        "name": str(merchant.get("name") or ""),
        "language": str(merchant.get("default_language") or "ar"),
        "color": merchant.get("widget_color") or "#1f6f5c",
        "greeting": merchant.get("widget_greeting") or "",
    }


async def create_session(request: web.Request) -> web.StreamResponse:
    """A new session, or the same customer's session renewed when a valid token is sent."""
    merchant = await _merchant(request)
    origin = _check_origin(request, merchant)
    await request.app[GUARD].check_session(client_ip(request))
    raw = await read_limited(request, SESSION_BODY_LIMIT)
    previous = ""
    if raw.strip():
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProblemError(400, "Malformed JSON", str(exc)) from exc
        if not isinstance(body, dict) or not isinstance(body.get("token", ""), str):
            raise ProblemError(
                422,
                "Validation failed",
                "token: must be a string",
                errors=[{"field": "token", "message": "must be a string"}],
            )
        previous = str(body.get("token") or "")
    tokens = request.app[TOKENS]
    customer: str | None = None
    if previous:
        with contextlib.suppress(InvalidSession):  # expired or foreign: a new customer
            customer = tokens.verify(previous, str(merchant["_id"])).customer_id
    session = tokens.issue(str(merchant["_id"]), customer)
    body_out = {
        "token": session.token,
        "customer_id": session.customer_id,
        "expires_at": session.expires_at,
        "renewed": customer is not None,
        "merchant": widget_profile(merchant),
    }
    return _cors(origin, json_response(body_out, status=201 if customer is None else 200))


async def session_preflight(request: web.Request) -> web.StreamResponse:
    merchant = await _merchant(request)
    origin = _check_origin(request, merchant)
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = SESSION_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return _cors(origin, response)


async def webchat_page(request: web.Request) -> web.StreamResponse:
    """The standalone page: the same widget, opened full-page."""
    merchant = await _merchant(request)
    profile = widget_profile(merchant)
    html = (
        (await static.asset("webchat/page.html"))
        .body.decode()
        .replace("{{MERCHANT_ID}}", _escape(profile["id"]))
        .replace("{{STORE_NAME}}", _escape(profile["name"]))
        .replace("{{LANG}}", "ar" if profile["language"] == "ar" else "en")
        .replace("{{DIR}}", "rtl" if profile["language"] == "ar" else "ltr")
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={**static.PAGE_HEADERS, "Content-Security-Policy": WEBCHAT_CSP},
    )


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def _history(request: web.Request, merchant_id: str, key: str) -> dict[str, Any]:
    repos = request.app[DEPS].records.repos
    newest = await repos.messages.page(merchant_id, key, limit=HISTORY_LIMIT, after=None)
    conv = await repos.conversations.get(merchant_id, conversation_id(key))
    items = list(reversed(newest.items))
    return webchat.history_frame(items, bool((conv or {}).get("paused")))


async def webchat_socket(request: web.Request) -> web.StreamResponse:
    merchant = await _merchant(request)
    merchant_id = str(merchant["_id"])
    token = request.query.get("token", "")
    if not token:
        if "customer" in request.query:
            raise ProblemError(
                400,
                "Session required",
                "?customer= is no longer accepted: POST /webchat/{merchant_id}/session for a "
                "token and connect with ?token=",
            )
        raise ProblemError(401, "Unauthorized", "connect with ?token= from POST .../session")
    try:
        session = request.app[TOKENS].verify(token, merchant_id)
    except InvalidSession as exc:
        raise ProblemError(401, "Unauthorized", str(exc)) from exc
    _check_origin(request, merchant)
    ip = client_ip(request)
    guard = request.app[GUARD]
    guard.open_socket(ip, merchant_id)
    try:
        return await _serve_socket(request, merchant_id, session.customer_id, ip)
    finally:
        guard.close_socket(ip, merchant_id)


# A client that keeps writing through this many refusals is not a person waiting a moment (the
# widget drops a refused frame and a shopper types far slower): the socket is closed, so a
# flood costs a new session and handshake, which have limits of their own, instead of a limiter
# call and an error frame per frame for as long as it likes (the abuse benchmark's sockets sent
# ~5,400 refused frames in 15 s).
MAX_REFUSED_IN_A_ROW = 20
CLOSE_TOO_MANY = 4429


async def _serve_socket(
    request: web.Request, merchant_id: str, customer_id: str, ip: str
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    hub = request.app[HUB]
    key = conversation_key(merchant_id, webchat.CHANNEL_ID, customer_id)
    hub.attach(key, ws)  # before the history, so no reply falls between the two
    try:
        await ws.send_str(orjson.dumps(await _history(request, merchant_id, key)).decode())
        refused = 0  # rate-limited frames in a row
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frames = await _handle_frame(request, merchant_id, customer_id, ip, msg.data)
            for frame in frames:
                await ws.send_str(orjson.dumps(frame).decode())
            refused = refused + 1 if frames[0].get("code") == "rate_limited" else 0
            if refused >= MAX_REFUSED_IN_A_ROW:
                await ws.close(code=CLOSE_TOO_MANY, message=b"too many messages")
                break
    except ConnectionResetError:
        # The browser went away between its frame and our ack. The message is already in the
        # inbox (it is answered and kept in the history); the widget re-sends unacknowledged
        # frames with their ids on reconnect and the dedupe keeps them once.
        pass
    finally:
        hub.detach(key, ws)
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _handle_frame(
    request: web.Request, merchant_id: str, customer_id: str, ip: str, raw: str
) -> list[dict[str, Any]]:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [{"type": "error", "message": "frames must be JSON"}]
    client_id = frame.get("id") if isinstance(frame, dict) else None
    if isinstance(frame, dict) and frame.get("type") == "ping":
        return [{"type": "pong"}]
    if not await request.app[GUARD].frame_allowed(ip, merchant_id):
        return [
            {
                "type": "error",
                "code": "rate_limited",
                "id": client_id,
                "message": "too many messages; wait a moment",
            }
        ]
    message = webchat.KIND.message(merchant_id, customer_id, frame, time.time())
    if isinstance(message, str):
        return [{"type": "error", "id": client_id, "message": message}]
    await request.app[INTAKE].append(message)
    frames: list[dict[str, Any]] = [{"type": "ack", "id": client_id}]
    conv = await request.app[DEPS].records.repos.conversations.get(
        merchant_id, conversation_id(message.conversation_key)
    )
    if not (conv or {}).get("paused"):  # an agent has it: the bot will not answer
        frames.append({"type": "typing", "id": client_id})
    return frames


async def widget_asset(request: web.Request) -> web.StreamResponse:
    """``widget.js`` and its stylesheet, loaded by merchants' pages (any origin may load them)."""
    asset = await static.asset("webchat/" + request.match_info["name"])
    return static.respond(asset, request, cross_origin=True)


def add_routes(app: web.Application) -> None:
    settings = app[DEPS].settings
    app[TOKENS] = WebchatTokens(webchat_secret(settings), settings.webchat_session_ttl_s)
    redis = app[DEPS].redis
    app[GUARD] = WebchatGuard(
        RateLimiter(redis, settings.webchat_window_s),
        SmoothLimiter(redis, "webchat-frames"),
        settings,
    )
    app.router.add_get("/webchat/{name:widget\\.(?:js|css)}", widget_asset)
    app.router.add_get("/webchat/{merchant_id}", webchat_page)
    app.router.add_post("/webchat/{merchant_id}/session", create_session)
    app.router.add_route("OPTIONS", "/webchat/{merchant_id}/session", session_preflight)
    app.router.add_get("/ws/webchat/{merchant_id}", webchat_socket)
