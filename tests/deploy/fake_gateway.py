"""A stand-in gateway replica for the nginx test: answers like the real routes nginx proxies
(/healthz, a POST route, the /ws/ WebSocket) and says which replica answered and which proxy
headers arrived. Run as ``python fake_gateway.py PORT NAME``; prints ``ready`` once listening.

The real ``create_app`` needs Redis, Ray and the stores behind it; what the nginx test checks
(spread, upgrade, failover, headers) depends only on HTTP behaviour, so this is enough.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import WSMsgType, web

_FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID", "X-Real-IP")


def _seen(request: web.Request, name: str) -> dict[str, object]:
    return {
        "instance": name,
        "headers": {h: request.headers.get(h, "") for h in _FORWARDED},
    }


def make_app(name: str) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **_seen(request, name)})

    async def playground(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"received": len(body), **_seen(request, name)})

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_json({"echo": msg.data, **_seen(request, name)})
        return ws

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/v1/playground/messages", playground)
    app.router.add_get("/ws/webchat/{merchant_id}", socket)
    return app


async def main(port: int, name: str) -> None:
    runner = web.AppRunner(make_app(name), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
