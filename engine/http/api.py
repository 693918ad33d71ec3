"""Wiring of the admin API into the gateway app: services, routes, OpenAPI, middleware."""

from __future__ import annotations

from aiohttp import web

from engine.http import openapi
from engine.http.context import API, Api, KeyDirectory, client_ip, jwt_secret
from engine.http.keys import AUTH, DEPS
from engine.http.limits import LoginThrottle, RateLimiter, digest
from engine.http.problems import Handler, ProblemError, problem
from engine.http.routes import analytics, carts, catalog, conversations, identity, orders
from engine.http.routing import Route, add_routes
from engine.http.tokens import TokenService
from engine.services.commerce import Commerce

ALL_ROUTES: list[Route] = [
    *identity.ROUTES,
    *catalog.ROUTES,
    *orders.ROUTES,
    *conversations.ROUTES,
    *carts.ROUTES,
    *analytics.ROUTES,
]
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


def _decorate(request: web.Request, resp: web.StreamResponse, extra: dict[str, str]) -> None:
    if resp.prepared:
        return
    for k, v in {**SECURITY_HEADERS, **extra}.items():
        resp.headers.setdefault(k, v)
    docs = request.path == "/api/v1/docs"
    resp.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else API_CSP)
    if request.app[DEPS].settings.base_url.startswith("https://"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    origin = (request.headers.get("Origin") or "").rstrip("/")
    if origin and origin in request.app[DEPS].settings.cors_origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = EXPOSE
        resp.headers["Vary"] = "Origin"


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS, rate limits (per key and per IP), RFC 9457 errors and security headers."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    api = request.app[API]
    settings = api.settings
    extra: dict[str, str] = {}
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        origin = (request.headers.get("Origin") or "").rstrip("/")
        if origin not in settings.cors_origins:
            resp: web.StreamResponse = problem(403, "Forbidden", "origin not allowed")
        else:
            resp = web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        _decorate(request, resp, extra)
        return resp
    try:
        if request.path not in UNLIMITED:
            buckets = [("ip:" + digest(client_ip(request)), settings.api_rate_per_ip)]
            token = request.headers.get("Authorization", "")
            if token:
                buckets.append(("key:" + digest(token), settings.api_rate_per_key))
            verdict = await api.limiter.hit(buckets)
            extra.update(verdict.headers())
            if not verdict.allowed:
                extra["Retry-After"] = str(verdict.reset_s)
                raise ProblemError(429, "Too many requests", f"retry in {verdict.reset_s} s")
        resp = await handler(request)
    except ProblemError as exc:
        if "retry_after" in exc.extra:
            extra["Retry-After"] = str(exc.extra["retry_after"])
        resp = problem(exc.status, exc.title, exc.detail, **exc.extra)
    except web.HTTPRequestEntityTooLarge as exc:
        resp = problem(413, "Payload too large", exc.text or "")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = problem(exc.status, exc.reason, exc.text or "")
    _decorate(request, resp, extra)
    return resp


def register_api_routes(app: web.Application) -> None:
    """Everything of the admin API in one call from the gateway's app factory."""
    deps = app[DEPS]
    store = deps.records.repos
    redis = deps.redis
    s = deps.settings
    tokens = TokenService(redis, jwt_secret(s))
    auth = app[AUTH]
    keys = KeyDirectory(store)
    auth.use(tokens, keys)
    app[API] = Api(
        deps=deps,
        records=deps.records,
        repos=store,
        tokens=tokens,
        throttle=LoginThrottle(redis, s.login_max_failures, s.login_max_per_ip),
        limiter=RateLimiter(redis, s.api_rate_window_s),
        commerce=Commerce(store),
        auth=auth,
        retriever=getattr(deps, "retriever", None),
    )
    app.middlewares.append(api_middleware)
    app.on_startup.append(_ensure_indexes)
    add_routes(app, ALL_ROUTES)
    spec = openapi.build(ALL_ROUTES)
    page = openapi.docs_page(spec)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(spec)

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", docs)


async def _ensure_indexes(app: web.Application) -> None:
    await app[API].repos.ensure_indexes()


__all__ = ["ALL_ROUTES", "Api", "register_api_routes"]
