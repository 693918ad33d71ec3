"""Extra HTTP servers on loopback for tests: a second gateway with other settings, a page.

A second gateway shares the session engine's Redis and record store (the same data, other
limits), so a test can tighten a limit without tightening it for the rest of the suite. It is
wired by the same ``Container`` the runtime uses; only the indexer is absent (nothing here
imports).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web

from engine.bootstrap import Container, Remotes
from engine.http.app import create_app


async def listen(app: web.Application, host: str, port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (0: a free port); the runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


@contextlib.asynccontextmanager
async def served(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """``app`` on a free port of ``host``; yields its base URL."""
    runner, url = await listen(app, host)
    try:
        yield url
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def second_gateway(
    runtime: Any, instance: str, host: str = "127.0.0.1", **settings: Any
) -> AsyncIterator[str]:
    """A gateway over ``runtime``'s stores with ``settings`` replaced; yields its base URL."""
    c = Container(
        replace(runtime.settings, **settings),
        Remotes(vectors=object()),  # type: ignore[arg-type]
        records=runtime.records,
    )
    try:
        async with served(create_app(c.gateway(runtime.readiness, instance=instance)), host) as url:
            yield url
    finally:
        await c.redis.aclose()


async def api_call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str = "",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One API request with a bearer ``token``: the status and the JSON body (None for 204)."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, json=body, headers=h) as r:
        return r.status, (await r.json(content_type=None) if r.status != 204 else None)
