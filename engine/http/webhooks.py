"""Provider webhooks, one route for every kind: verify on the raw body, parse, append, answer.

``POST /webhooks/{kind}/{channel_id}``: nothing is parsed before the kind's signature check,
and nothing is acknowledged before every message is durable in the inbox (``services.intake``):
a crash between the two makes the provider redeliver, and the dedupe key turns that
redelivery into a no-op. ``GET`` answers the kind's subscription handshake (Meta's
``hub.challenge``). What to verify, how to parse and what to answer is the kind's own
(``connectors/``).
"""

from __future__ import annotations

import time

from aiohttp import web

from connectors import registry
from connectors.base import ChannelKind, MalformedPayload
from connectors.stores import registry as store_registry
from engine.domain.channels import Channel
from engine.http.context import API, client_ip
from engine.http.keys import CHANNELS, DEPS, INTAKE
from engine.http.limits import digest
from engine.http.problems import ProblemError, json_response, read_limited
from engine.http.store_webhooks import store_webhook
from observability import metrics, tracing


def _kind(request: web.Request) -> ChannelKind:
    spec = registry.get(request.match_info["kind"])
    if spec is None or spec.connect is None:
        raise ProblemError(404, "Unknown channel kind", "no webhook for this kind")
    return spec


async def _channel(request: web.Request, spec: ChannelKind) -> Channel:
    channel = await request.app[CHANNELS].channel(request.match_info["channel_id"])
    if channel is None or channel.kind != spec.kind:
        metrics.WEBHOOKS.labels(spec.kind, "unknown_channel").inc()
        raise ProblemError(404, "Unknown channel", f"no {spec.kind} channel with this id")
    return channel


async def admit(request: web.Request) -> str:
    """Per client address: a bound on all webhooks and a tight one on failed ones (what an
    attacker without a channel's secret can send); the address's failure bucket name."""
    api = request.app[API]
    settings = api.settings
    address = digest(client_ip(request))
    failures = "wh-bad:" + address
    if not await api.limiter.hit_unless(
        "wh:" + address,
        settings.webhook_rate_per_address,
        failures,
        settings.webhook_failures_per_address,
    ):
        raise ProblemError(
            429,
            "Too many requests",
            "too many webhooks from here",
            retry_after=settings.api_rate_window_s,
        )
    return failures


async def webhook(request: web.Request) -> web.Response:
    failures = await admit(request)
    try:
        store = store_registry.get(request.match_info["kind"])
        if store is not None:  # a store platform's event, not a channel's message
            return await store_webhook(request, store)
        spec = _kind(request)
        with tracing.span(spec.webhook_span or f"webhook.{spec.kind}", kind=tracing.SERVER):
            return await _webhook(request, spec)
    except ProblemError as exc:
        if exc.status in (400, 401, 404):
            await request.app[API].limiter.hit([(failures, 1 << 30)])
        raise


async def _webhook(request: web.Request, spec: ChannelKind) -> web.Response:
    received_at = time.time()
    body = await read_limited(request, request.app[DEPS].settings.max_body_bytes)
    channel = await _channel(request, spec)
    if not spec.verify(channel, request.headers, body):
        metrics.WEBHOOKS.labels(spec.kind, "bad_signature").inc()
        raise ProblemError(401, "Unauthorized", "signature or secret token missing or wrong")
    tracing.annotate(merchant_id=channel.merchant_id, channel_kind=spec.kind)
    try:
        inbound = spec.parse(channel, body, received_at)
    except MalformedPayload as exc:
        metrics.WEBHOOKS.labels(spec.kind, "malformed").inc()
        raise ProblemError(400, "Malformed webhook", str(exc)) from exc
    accepted = await request.app[INTAKE].accept(channel, inbound)
    answer = spec.answer(inbound, accepted)
    if answer.json is not None:
        return json_response(answer.json)
    return web.Response(text=answer.text, content_type="text/plain")


async def handshake(request: web.Request) -> web.Response:
    """The platform's subscription check: echo its challenge iff the verify token matches."""
    await admit(request)
    spec = _kind(request)
    channel = await _channel(request, spec)
    challenge = spec.handshake(channel, request.query)
    if challenge is None:
        raise ProblemError(403, "Forbidden", "verification failed")
    return web.Response(text=challenge, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhooks/{kind}/{channel_id}", handshake)
    app.router.add_post("/webhooks/{kind}/{channel_id}", webhook)
