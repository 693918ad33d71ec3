"""The gateway's aiohttp application factory.

Resources (the reply hub, the local delivery worker) are owned through ``cleanup_ctx`` so they
start with the app and stop with it; typed ``AppKey`` state holds the dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from engine.adapters.providers import CachedChannels, LocalSender
from engine.adapters.redis.keys import OUTBOX_GROUP, outbox_stream
from engine.adapters.redis.queues import Outbox, StreamConsumer
from engine.http import webchat, webhooks
from engine.http.api import register_api_routes
from engine.http.auth import MerchantAuth
from engine.http.deps import GatewayDeps
from engine.http.hub import ReplyHub
from engine.http.keys import AUTH, CHANNELS, DEPS, HUB
from engine.http.problems import Handler, json_response, problem_middleware
from engine.http.routes import admin, channels
from engine.http.routes import gaps as analytics
from engine.services.delivery import DeliveryWorker
from observability import metrics, queue_probe

log = logging.getLogger(__name__)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = "unmatched"
    info = request.match_info
    if info.route.resource is not None:
        route = info.route.resource.canonical
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 503 only for what a restart of this process fixes and nothing else will.

    A Redis that is down for a moment is readiness' business (``/readyz``; the supervisor is
    restarting it); a supervisor that gave up is this endpoint's.
    """
    liveness = request.app[DEPS].liveness
    reason = liveness() if liveness is not None else None
    if reason:
        return json_response({"status": "failed", "reason": reason}, status=503)
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        checks = await asyncio.wait_for(request.app[DEPS].readiness(), timeout=5)
    except Exception as exc:
        return json_response({"ready": False, "error": type(exc).__name__}, status=503)
    ready = all(checks.values())
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics_endpoint(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    metrics.watch_data_dir(deps.settings.data_dir)
    with contextlib.suppress(Exception):  # a scrape must answer even when Redis does not
        await asyncio.wait_for(queue_probe.sample(deps.redis, deps.settings.inbox_partitions), 2)
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    await hub.start()
    yield
    await hub.stop()


async def _local_delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """Webchat and playground replies leave the outbox here and reach the hub via pub/sub."""
    deps = app[DEPS]
    worker = DeliveryWorker(
        StreamConsumer(deps.redis, [outbox_stream("webchat")], OUTBOX_GROUP, deps.instance),
        Outbox(deps.redis),
        LocalSender(deps.redis),
        None,
        max_attempts=deps.settings.delivery_max_attempts,
    )
    task = asyncio.create_task(worker.run())
    yield
    await worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(deps: GatewayDeps) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problem_middleware],
        client_max_size=deps.settings.max_import_bytes,
    )
    app[DEPS] = deps
    app[AUTH] = MerchantAuth(deps.records, deps.settings.admin_token)
    app[HUB] = ReplyHub(deps.redis)
    app[CHANNELS] = CachedChannels(deps.records, ttl_s=10.0)
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_local_delivery_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/api/v1/merchants", admin.create_merchant)
    app.router.add_post("/api/v1/catalog/import", admin.import_catalog)
    app.router.add_post("/api/v1/knowledge/import", admin.import_knowledge)
    app.router.add_get("/api/v1/jobs/{job_id}", admin.get_job)
    app.router.add_post("/api/v1/channels", channels.create_channel)
    app.router.add_get("/api/v1/channels", channels.list_channels)
    app.router.add_delete("/api/v1/channels/{channel_id}", channels.delete_channel)
    app.router.add_get("/api/v1/outbox/dead-letters", channels.list_dead_letters)
    app.router.add_post(
        "/api/v1/outbox/dead-letters/{entry_id}/replay", channels.replay_dead_letter
    )
    app.router.add_post("/api/v1/playground/messages", admin.playground_message)
    app.router.add_post("/webhooks/telegram/{channel_id}", webhooks.telegram_webhook)
    app.router.add_get("/webhooks/{kind}/{channel_id}", webhooks.meta_verify)
    app.router.add_post("/webhooks/{kind}/{channel_id}", webhooks.meta_webhook)
    app.router.add_get("/webchat/{merchant_id}", webchat.webchat_page)
    app.router.add_get("/ws/webchat/{merchant_id}", webchat.webchat_socket)
    register_api_routes(app)
    analytics.register(app)
    return app
