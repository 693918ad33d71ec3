"""The gateway's aiohttp application: the ONE HTTP layer of the engine.

``create_app`` builds everything the gateway serves: the system routes (``/healthz``,
``/readyz``, ``/metrics``), the ``/api/v1`` route table (``engine/http/routes``: auth, RBAC,
validation and OpenAPI declared together), the provider webhooks and the webchat. Errors of
every route leave through one problem+json path (``edge_middleware``). Resources that live as
long as the app (the reply hub, the local delivery worker, the provider HTTP session) are owned
through ``cleanup_ctx``; typed ``AppKey`` state holds the dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors import registry
from engine.adapters import egress
from engine.adapters.providers import CachedChannels, LocalSender, ProviderClient
from engine.adapters.redis import keys
from engine.adapters.redis.idempotency import IdempotencyStore
from engine.adapters.redis.keys import OUTBOX_GROUP, outbox_stream
from engine.adapters.redis.queues import Outbox, StreamConsumer
from engine.http import openapi, payment_webhooks, static, webchat, webhooks
from engine.http.auth import MerchantAuth
from engine.http.context import API, Api, KeyDirectory, client_ip, jwt_secret
from engine.http.deps import GatewayDeps
from engine.http.hub import ReplyHub
from engine.http.keys import AUTH, CHANNELS, DEPS, HUB, INTAKE, OPENAPI, PROVIDERS
from engine.http.limits import LoginThrottle, RateLimiter, digest
from engine.http.live import LIVE, LiveHub, SessionEnd
from engine.http.problems import (
    Handler,
    ProblemError,
    as_problem,
    json_response,
    store_unavailable,
)
from engine.http.routes import ALL_ROUTES
from engine.http.routes.imports import UPLOADS, UploadSlots
from engine.http.routing import add_routes
from engine.http.tokens import TokenService
from engine.services.delivery import DeliveryBounds, DeliveryWorker
from engine.services.identity import Team
from engine.services.intake import Intake
from observability import metrics, queue_probe

log = logging.getLogger(__name__)

UNLIMITED = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Kaleem-Merchant"
EXPOSE = "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Location"


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


def _decorate(request: web.Request, resp: web.StreamResponse, extra: dict[str, str]) -> None:
    """Security headers, rate-limit headers and CORS for ``/api/`` answers."""
    if resp.prepared:
        return
    for k, v in {**SECURITY_HEADERS, **extra}.items():
        resp.headers.setdefault(k, v)
    docs = request.path == "/api/v1/docs"
    resp.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else API_CSP)
    settings = request.app[DEPS].settings
    if settings.base_url.startswith("https://"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    origin = (request.headers.get("Origin") or "").rstrip("/")
    if origin and origin in settings.cors_origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = EXPOSE
        resp.headers["Vary"] = "Origin"


def _preflight(request: web.Request) -> web.StreamResponse:
    origin = (request.headers.get("Origin") or "").rstrip("/")
    if origin not in request.app[DEPS].settings.cors_origins:
        return as_problem(ProblemError(403, "Forbidden", "origin not allowed"))
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )


async def _rate_limit(request: web.Request, extra: dict[str, str]) -> None:
    """Per IP and per credential, shared by every replica (Redis)."""
    api = request.app[API]
    settings = api.settings
    buckets = [("ip:" + digest(client_ip(request)), settings.api_rate_per_ip)]
    token = request.headers.get("Authorization", "")
    if token:
        buckets.append(("key:" + digest(token), settings.api_rate_per_key))
    verdict = await api.limiter.hit(buckets)
    extra.update(verdict.headers())
    if not verdict.allowed:
        extra["Retry-After"] = str(verdict.reset_s)
        raise ProblemError(429, "Too many requests", f"retry in {verdict.reset_s} s")


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error of every route becomes one RFC 9457 problem document here; ``/api/``
    answers also get CORS, rate limits (per key and per IP) and security headers."""
    is_api = request.path.startswith("/api/")
    extra: dict[str, str] = {}
    if (
        is_api
        and request.method == "OPTIONS"
        and "Access-Control-Request-Method" in (request.headers)
    ):
        resp = _preflight(request)
        _decorate(request, resp, extra)
        return resp
    try:
        if is_api and request.path not in UNLIMITED:
            await _rate_limit(request, extra)
        resp = await handler(request)
    except (ProblemError, web.HTTPException) as exc:
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise
        if isinstance(exc, ProblemError) and "retry_after" in exc.extra:
            extra["Retry-After"] = str(exc.extra["retry_after"])
        resp = as_problem(exc)
    except Exception as exc:
        unavailable = store_unavailable(exc)  # Redis restarting: 503 + Retry-After, not 500
        if unavailable is None:
            log.exception("unhandled error", extra={"path": request.path})
            unavailable = as_problem(ProblemError(500, "Internal error", "the error was logged"))
        resp = unavailable
    if is_api:
        _decorate(request, resp, extra)
    elif "Retry-After" in extra and not resp.prepared:  # providers redeliver after it
        resp.headers["Retry-After"] = extra["Retry-After"]
    return resp


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
    inbox = [keys.inbox_stream(p) for p in range(deps.settings.inbox_partitions)]
    outbox = {kind: keys.outbox_stream(kind) for kind in registry.outbox_streams()}
    with contextlib.suppress(Exception):  # a scrape must answer even when Redis does not
        await asyncio.wait_for(
            queue_probe.sample(deps.redis, inbox, outbox, Outbox(deps.redis).dead_letter_backlog),
            2,
        )
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub, live_hub = app[HUB], app[LIVE]
    await hub.start()
    await live_hub.start()
    yield
    await live_hub.stop()
    await hub.stop()


async def _providers_ctx(app: web.Application) -> AsyncIterator[None]:
    """One HTTP session for the admin routes' provider calls (``setWebhook`` and the like)."""
    allow_private = app[DEPS].settings.allow_private_api_base
    async with egress.session(allow_private=allow_private) as session:
        app[PROVIDERS] = ProviderClient(session, timeout_s=5.0, allow_private=allow_private)
        yield


async def _local_delivery_ctx(app: web.Application) -> AsyncIterator[None]:
    """Webchat and playground replies leave the outbox here and reach the hub via pub/sub."""
    deps = app[DEPS]
    worker = DeliveryWorker(
        StreamConsumer(
            deps.redis, [outbox_stream(registry.LOCAL_OUTBOX)], OUTBOX_GROUP, deps.instance
        ),
        Outbox(deps.redis),
        LocalSender(deps.redis),
        None,
        max_attempts=deps.settings.delivery_max_attempts,
        # A local send is one Redis PUBLISH (no merchant-chosen host to stall on), so only the
        # buffer bounds and the deadline matter; the in-flight caps are generous.
        bounds=DeliveryBounds(inflight_per_channel=64, inflight_per_merchant=256),
    )
    task = asyncio.create_task(worker.run())
    yield
    await worker.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _api(deps: GatewayDeps, auth: MerchantAuth) -> Api:
    store = deps.records.repos
    s = deps.settings
    tokens = TokenService(deps.redis, jwt_secret(s))
    auth.use(tokens, KeyDirectory(store))
    sessions = SessionEnd(deps.redis, tokens, auth)
    assert deps.commerce and deps.gaps and deps.staff and deps.catalog, "built by Container"
    return Api(
        deps=deps,
        records=deps.records,
        repos=store,
        tokens=tokens,
        throttle=LoginThrottle(deps.redis, s.login_max_failures, s.login_max_per_ip),
        limiter=RateLimiter(deps.redis, s.api_rate_window_s),
        commerce=deps.commerce,
        gaps=deps.gaps,
        auth=auth,
        idempotency=IdempotencyStore(deps.redis),
        staff=deps.staff,
        catalog=deps.catalog,
        team=Team(store, sessions),
        sessions=sessions,
        retriever=deps.retriever,
        settlements=deps.settlements,
        payments=deps.payments,
    )


def create_app(deps: GatewayDeps) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, edge_middleware],
        client_max_size=deps.settings.max_import_bytes,
    )
    app[DEPS] = deps
    app[AUTH] = MerchantAuth(deps.records, deps.settings.admin_token)
    app[API] = _api(deps, app[AUTH])
    app[HUB] = ReplyHub(deps.settings.redis_url)
    app[LIVE] = LiveHub(
        deps.settings.redis_url,
        max_per_merchant=deps.settings.live_max_per_merchant,
        max_per_address=deps.settings.live_max_per_address,
    )
    app[CHANNELS] = CachedChannels(deps.records, ttl_s=10.0)
    app[INTAKE] = Intake(deps.inbox, deps.records)
    app[OPENAPI] = openapi.build(ALL_ROUTES)
    app[UPLOADS] = UploadSlots(deps.settings.import_concurrency)
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_providers_ctx)
    app.cleanup_ctx.append(_local_delivery_ctx)
    app.cleanup_ctx.append(payment_webhooks.sweep_ctx)
    app.on_startup.append(_ensure_indexes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    add_routes(app, ALL_ROUTES)
    webhooks.add_routes(app)
    payment_webhooks.add_routes(app)
    webchat.add_routes(app)
    static.add_routes(app)
    return app


async def _ensure_indexes(app: web.Application) -> None:
    await app[API].repos.ensure_indexes()
