"""Live updates for agents over a WebSocket: one pub/sub connection per gateway, fanned out.

Every gateway replica publishes the events of its own API calls on the merchant's channel, and
the conversation hosts publish customer messages, bot replies and cart changes there when a
turn commits (``engine.services.projections``). A replica subscribes ONCE (a pattern over every
merchant's channel, on a Redis client of its own) and hands each event to its sockets of that
merchant: a socket per subscription took one connection from the pool the webhooks use, and
~63 agent tabs stalled every webhook for 20 s.

Sockets are bounded per client address and per merchant, each has a bounded send queue (a
slow reader is dropped, never buffered without end), and a socket ends when its credential
does: at the token's expiry, and on logout, key revocation, user removal or role change — the
API publishes an ``auth.revoked`` control event that every replica acts on (never forwarded to
browsers), and every socket re-checks its credential once a minute in case one was missed.

Browsers cannot set headers on a WebSocket, so the socket authenticates with its first frame
(``{"type": "auth", "token": "<access token or API key>"}``) unless an Authorization header
was sent; the token never goes in the URL (URLs end up in logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

from engine.adapters.redis import keys, live_events
from engine.adapters.redis.subscription import Subscription
from engine.http.auth import Caller, MerchantAuth
from engine.http.context import API, Api, client_ip
from engine.http.problems import ProblemError
from engine.http.routing import Ctx
from engine.http.tokens import TokenService

log = logging.getLogger(__name__)
AUTH_TIMEOUT_S = 5.0
MAX_FRAME = 4096
REVOKED = "auth.revoked"
SEND_QUEUE = 256
RECHECK_S = 60.0
UNAUTHORIZED = 4401
TOO_MANY = 4429


async def publish(api: Api, merchant_id: str, kind: str, data: dict[str, Any]) -> None:
    """Best effort: a lost live event only delays a screen refresh, never loses data."""
    await live_events.publish(api.deps.redis, merchant_id, kind, data)


class SessionEnd:
    """The team use case's ``Sessions`` port on a gateway: a changed or removed user's tokens
    stop working (the epoch moves) and its live sockets close on every replica; a revoked
    key leaves this replica's cache at once (others within the cache's TTL)."""

    def __init__(self, redis: aioredis.Redis, tokens: TokenService, auth: MerchantAuth) -> None:
        self._redis = redis
        self._tokens = tokens
        self._auth = auth

    async def end_user(self, merchant_id: str, user_id: str) -> None:
        await self._tokens.void_user(user_id)
        await _revoked(self._redis, merchant_id, user_id=user_id)

    async def end_key(self, merchant_id: str, key_id: str, key_hash: str) -> None:
        self._auth.forget(key_hash)
        await _revoked(self._redis, merchant_id, key_id=key_id)


async def revoke(
    api: Api,
    merchant_id: str,
    *,
    user_id: str | None = None,
    key_id: str | None = None,
    token_id: str | None = None,
) -> None:
    """End the live sockets of a credential on every replica (logout, revocation, removal)."""
    await _revoked(api.deps.redis, merchant_id, user_id=user_id, key_id=key_id, token_id=token_id)


async def _revoked(redis: aioredis.Redis, merchant_id: str, **who: str | None) -> None:
    """The control event every replica acts on (never forwarded to browsers)."""
    await live_events.publish(redis, merchant_id, REVOKED, {k: v for k, v in who.items() if v})


@dataclass(eq=False)
class _Session:
    merchant_id: str
    caller: Caller
    token: str
    address: str
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(SEND_QUEUE))

    def matches(self, who: dict[str, Any]) -> bool:
        c = self.caller
        return bool(
            (who.get("user_id") and who["user_id"] == c.user_id)
            or (who.get("key_id") and who["key_id"] == c.key_id)
            or (who.get("token_id") and who["token_id"] == c.token_id)
        )


class LiveHub:
    """The gateway's agent sockets and its one subscription to every merchant's events."""

    def __init__(self, redis_url: str, *, max_per_merchant: int, max_per_address: int) -> None:
        self._max_merchant = max_per_merchant
        self._max_address = max_per_address
        self._sessions: dict[str, set[_Session]] = defaultdict(set)
        self._per_address: dict[str, int] = defaultdict(int)
        self._subscription = Subscription(
            redis_url, keys.agent_events("*"), self._route, pattern=True
        )

    async def start(self) -> None:
        await self._subscription.start()

    async def stop(self) -> None:
        await self._subscription.stop()
        for sessions in list(self._sessions.values()):
            for s in list(sessions):
                with contextlib.suppress(Exception):
                    await s.ws.close(code=1001, message=b"server shutting down")

    def sockets(self, merchant_id: str) -> int:
        return len(self._sessions.get(merchant_id, ()))

    def address_full(self, address: str) -> bool:
        return self._per_address.get(address, 0) >= self._max_address

    def admit(self, session: _Session) -> bool:
        if len(self._sessions[session.merchant_id]) >= self._max_merchant:
            return False
        self._sessions[session.merchant_id].add(session)
        self._per_address[session.address] += 1
        return True

    def release(self, session: _Session) -> None:
        sessions = self._sessions.get(session.merchant_id)
        if sessions is not None and session in sessions:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.merchant_id]
            self._per_address[session.address] -= 1
            if self._per_address[session.address] <= 0:
                del self._per_address[session.address]

    def _route(self, channel: str, data: bytes) -> None:
        merchant_id = keys.merchant_of_agent_events(channel)
        sessions = self._sessions.get(merchant_id) if merchant_id else None
        if not sessions:
            return
        text = data.decode()
        if REVOKED in text:
            event = orjson.loads(text)
            if event.get("type") == REVOKED:
                for s in [s for s in sessions if s.matches(event.get("data") or {})]:
                    asyncio.get_running_loop().create_task(_end(s, "credential revoked"))
                return
        for s in list(sessions):
            try:
                s.queue.put_nowait(text)
            except asyncio.QueueFull:  # a reader this slow is dropped, not buffered forever
                asyncio.get_running_loop().create_task(_end(s, "too slow"))


async def _end(session: _Session, why: str) -> None:
    with contextlib.suppress(Exception):
        await session.ws.close(
            code=UNAUTHORIZED if "revoked" in why else 1008, message=why.encode()
        )


class _HeaderRequest:
    """Lets ``MerchantAuth`` check a token that arrived in a frame, like a header."""

    def __init__(self, request: web.Request, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.method = request.method
        self.path = request.path


async def _credential(request: web.Request, ws: web.WebSocketResponse) -> tuple[Caller, str] | None:
    auth: MerchantAuth = request.app[API].auth
    try:
        header = request.headers.get("Authorization", "")
        if header:
            return await auth.require_merchant(request), header.partition(" ")[2].strip()
        msg = await asyncio.wait_for(ws.receive(), timeout=AUTH_TIMEOUT_S)
        if msg.type != WSMsgType.TEXT or len(msg.data) > MAX_FRAME:
            return None
        frame = orjson.loads(msg.data)
        token = frame.get("token") if isinstance(frame, dict) else None
        if frame.get("type") != "auth" or not isinstance(token, str) or not token:
            return None
        caller = await auth.require_merchant(_HeaderRequest(request, token))  # type: ignore[arg-type]
        return caller, token
    except (ProblemError, TimeoutError, orjson.JSONDecodeError, AttributeError):
        return None


async def _still_valid(request: web.Request, token: str) -> bool:
    try:
        await request.app[API].auth.require_merchant(
            _HeaderRequest(request, token),  # type: ignore[arg-type]
            fresh=True,
        )
    except ProblemError:
        return False
    return True


async def live(ctx: Ctx) -> web.StreamResponse:
    request = ctx.request
    hub = request.app[LIVE]
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ProblemError(426, "Upgrade required", "connect with a WebSocket")
    address = client_ip(request)
    if hub.address_full(address):
        raise ProblemError(429, "Too many live sockets", "close another tab first")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    found = await _credential(request, ws)
    if found is None:
        await ws.close(code=UNAUTHORIZED, message=b"unauthorized")
        return ws
    caller, token = found
    session = _Session(caller.merchant_id, caller, token, address, ws)
    if not hub.admit(session):
        await ws.close(code=TOO_MANY, message=b"too many live sockets for this merchant")
        return ws
    tasks: list[asyncio.Task[None]] = []
    try:
        await ws.send_json({"type": "ready", "merchant_id": caller.merchant_id})
        tasks = [
            asyncio.create_task(_relay(session)),
            asyncio.create_task(_expire(request, session)),
        ]
        async for msg in ws:  # agents only listen; reading keeps the close handshake working
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.release(session)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return ws


async def _relay(session: _Session) -> None:
    while True:
        await session.ws.send_str(await session.queue.get())


async def _expire(request: web.Request, session: _Session) -> None:
    """Close at the token's expiry, and whenever a periodic re-check fails."""
    while True:
        wait = RECHECK_S
        if session.caller.token_exp:
            wait = min(wait, max(0.0, session.caller.token_exp - time.time()))
        await asyncio.sleep(wait)
        expired = bool(session.caller.token_exp) and time.time() >= session.caller.token_exp
        if expired or not await _still_valid(request, session.token):
            await _end(session, "credential revoked")
            return


LIVE = web.AppKey("live", LiveHub)
