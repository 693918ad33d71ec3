"""Store-platform webhooks: ``POST /webhooks/{salla|zid|shopify}/{integration_id}``.

The same discipline as the channels' webhooks (``engine.http.webhooks``, whose admission
limits these share): the raw body is verified with the integration's own secret before
anything is parsed (a wrong or missing signature or Basic credential is 401 and changes
nothing), then the event is applied and remembered, so a redelivery is a no-op. Answers carry
fixed words only.
"""

from __future__ import annotations

from aiohttp import web

from connectors.stores.base import MalformedStorePayload, StoreKind
from engine.domain.integrations import DISCONNECTED, INTEGRATION_ID
from engine.http.keys import DEPS
from engine.http.problems import ProblemError, json_response, read_limited
from observability import metrics, tracing


async def store_webhook(request: web.Request, spec: StoreKind) -> web.Response:
    deps = request.app[DEPS]
    desk = deps.stores
    if desk is None:
        raise ProblemError(404, "Unknown integration", "store integrations are not served here")
    with tracing.span(f"webhook.{spec.kind}", kind=tracing.SERVER):
        body = await read_limited(request, deps.settings.max_body_bytes)
        integration_id = request.match_info["channel_id"]
        integration = (
            await desk.vault.get(integration_id) if INTEGRATION_ID.match(integration_id) else None
        )
        if (
            integration is None
            or integration.kind != spec.kind
            or integration.status == DISCONNECTED
        ):
            metrics.STORE_WEBHOOKS.labels(spec.kind, "unknown_integration").inc()
            raise ProblemError(
                404, "Unknown integration", f"no {spec.kind} integration with this id"
            )
        if not spec.verify(integration.credentials, request.headers, body):
            metrics.STORE_WEBHOOKS.labels(spec.kind, "bad_signature").inc()
            raise ProblemError(401, "Unauthorized", "signature or credentials missing or wrong")
        tracing.annotate(merchant_id=integration.merchant_id, channel_kind=spec.kind)
        try:
            event = spec.parse_event(request.headers, request.query, body)
        except MalformedStorePayload as exc:
            metrics.STORE_WEBHOOKS.labels(spec.kind, "malformed").inc()
            raise ProblemError(400, "Malformed webhook", str(exc)) from exc
        outcome = await desk.sync.apply_event(integration, event)
        metrics.STORE_WEBHOOKS.labels(spec.kind, outcome).inc()
        return json_response({"ok": True, "outcome": outcome})
