"""What the fake store platforms share: a loopback server, a catalogue, requests recorded,
failures on request (a 429 with ``Retry-After`` on the n-th catalogue page, a status for the
webhook-subscription calls), the webhook subscriptions they hold and a way to deliver a
webhook to them, signed as the platform signs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.gateways import listen


@dataclass(slots=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0


@dataclass(slots=True)
class FakeStore:
    products: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Seen] = field(default_factory=list)
    base_url: str = ""
    # 1-based numbers of catalogue requests answered 429 (each once).
    throttle_requests: set[int] = field(default_factory=set)
    retry_after: str = "1"
    # Awaited with the request's number before a catalogue page is answered (something else
    # happening while a page is in flight, e.g. a webhook).
    before_page: Callable[[int], Awaitable[None]] | None = None
    # The webhook subscriptions the platform holds, as its list endpoint shows them.
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    # When set, the subscription endpoints (list, create, delete) answer this status, in the
    # platform's error shape (an outage, a revoked scope).
    subscription_failure: int = 0
    _page_requests: int = 0
    _runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> str:
        self._runner, self.base_url = await listen(self.app(), "127.0.0.1")
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def seen(self, request: web.Request) -> Seen:
        call = Seen(request.method, request.path, dict(request.query))
        self.calls.append(call)
        return call

    async def throttled(self) -> bool:
        """Count a catalogue request; True when this one is to be answered 429."""
        self._page_requests += 1
        if self.before_page is not None:
            await self.before_page(self._page_requests)
        if self._page_requests in self.throttle_requests:
            self.throttle_requests.discard(self._page_requests)
            return True
        return False

    def page_calls(self, path_part: str) -> list[Seen]:
        return [c for c in self.calls if path_part in c.path]

    async def deliver(self, topic: str, item: dict[str, Any]) -> list[tuple[int, str]]:
        """Fire ``topic`` at every URL subscribed to it, as the platform would: each answer's
        status and body."""
        raise NotImplementedError

    def subscribed(self, topic: str) -> list[dict[str, Any]]:
        """The subscriptions held for ``topic`` (the platform's own field names)."""
        return [s for s in self.subscriptions if topic in (s.get("event"), s.get("topic"))]


async def post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, str]:
    """One delivery, as a platform makes it: a POST of the raw body, no redirects followed."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            allow_redirects=False,
        ) as resp,
    ):
        return resp.status, await resp.text()


def answer(
    call: Seen, status: int, body: Any, headers: dict[str, str] | None = None
) -> web.Response:
    call.status = status
    return web.json_response(body, status=status, headers=headers)
