"""Provider webhooks: verify on the raw body, parse, dedupe + durable append, then 200.

Nothing is parsed before the signature check, and nothing is acknowledged before the message
is durable in the inbox: a crash between the two makes the provider redeliver, and the dedupe
key turns that redelivery into a no-op. A Meta POST may batch many entries and messaging items:
every one is appended (in order, so one conversation's messages keep their order) before the
single acknowledgement; if an append fails the whole POST fails and Meta redelivers it, and the
items already appended are recognised as duplicates.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from connectors import meta, telegram
from connectors.base import MalformedPayload
from engine.adapters.records import Channel
from engine.http.keys import CHANNELS, DEPS
from engine.http.problems import ProblemError, json_response, read_limited
from observability import metrics, tracing

log = logging.getLogger(__name__)


async def telegram_webhook(request: web.Request) -> web.Response:
    with tracing.span("webhook.telegram", kind=tracing.SERVER):
        return await _telegram_webhook(request)


async def _telegram_webhook(request: web.Request) -> web.Response:
    received_at = time.time()
    deps = request.app[DEPS]
    channel_id = request.match_info["channel_id"]
    body = await read_limited(request, deps.settings.max_body_bytes)
    channel = await request.app[CHANNELS].channel(channel_id)
    if channel is None or channel.kind != "telegram":
        metrics.WEBHOOKS.labels("telegram", "unknown_channel").inc()
        raise ProblemError(404, "Unknown channel", "no Telegram channel with this id")
    if not telegram.verify_secret(
        channel.secret_token, request.headers.get(telegram.SECRET_HEADER)
    ):
        metrics.WEBHOOKS.labels("telegram", "bad_signature").inc()
        raise ProblemError(401, "Unauthorized", "secret token missing or wrong")
    tracing.annotate(merchant_id=channel.merchant_id)
    try:
        message = telegram.parse_update(
            body, merchant_id=channel.merchant_id, channel_id=channel.id, received_at=received_at
        )
    except MalformedPayload as exc:
        metrics.WEBHOOKS.labels("telegram", "malformed").inc()
        raise ProblemError(400, "Malformed update", str(exc)) from exc
    if message is None:
        update_id = telegram.update_id_of(body)
        if update_id is not None:
            await deps.inbox.mark_seen(channel.merchant_id, channel.id, str(update_id))
        metrics.WEBHOOKS.labels("telegram", "ignored").inc()
        return json_response({"ok": True})
    with tracing.span(
        "inbox.append",
        merchant_id=channel.merchant_id,
        attributes={"kaleem.channel_kind": "telegram", "kaleem.message_id": message.message_id},
    ):
        accepted = await deps.inbox.append(tracing.carry(message))
        tracing.annotate(duplicate=not accepted)
    metrics.WEBHOOKS.labels("telegram", "accepted" if accepted else "duplicate").inc()
    # A callback query is answered in the webhook response itself (no extra API call).
    return json_response(telegram.webhook_answer_for(message if accepted else None))


async def _meta_channel(request: web.Request) -> tuple[str, Channel]:
    kind = request.match_info["kind"]
    if kind not in meta.META_KINDS:
        raise ProblemError(404, "Unknown channel kind", "no webhook for this kind")
    channel = await request.app[CHANNELS].channel(request.match_info["channel_id"])
    if channel is None or channel.kind != kind:
        metrics.WEBHOOKS.labels(kind, "unknown_channel").inc()
        raise ProblemError(404, "Unknown channel", f"no {kind} channel with this id")
    return kind, channel


async def meta_verify(request: web.Request) -> web.Response:
    """Meta's subscription handshake: echo ``hub.challenge`` iff the verify token matches."""
    _, channel = await _meta_channel(request)
    q = request.query
    challenge = meta.verify_challenge(
        channel.verify_token, q.get("hub.mode"), q.get("hub.verify_token"), q.get("hub.challenge")
    )
    if challenge is None:
        raise ProblemError(403, "Forbidden", "verification failed")
    return web.Response(text=challenge, content_type="text/plain")


async def meta_webhook(request: web.Request) -> web.Response:
    with tracing.span("webhook.meta", kind=tracing.SERVER):
        return await _meta_webhook(request)


async def _meta_webhook(request: web.Request) -> web.Response:
    received_at = time.time()
    deps = request.app[DEPS]
    body = await read_limited(request, deps.settings.max_body_bytes)
    kind, channel = await _meta_channel(request)
    if not meta.verify_signature(
        channel.app_secret, body, request.headers.get(meta.SIGNATURE_HEADER)
    ):
        metrics.WEBHOOKS.labels(kind, "bad_signature").inc()
        raise ProblemError(401, "Unauthorized", "X-Hub-Signature-256 missing or wrong")
    tracing.annotate(merchant_id=channel.merchant_id, channel_kind=kind)
    try:
        if kind == "whatsapp":
            parsed = meta.parse_whatsapp(
                body,
                merchant_id=channel.merchant_id,
                channel_id=channel.id,
                phone_number_id=channel.account_id,
                received_at=received_at,
            )
        else:
            parsed = meta.parse_messaging(
                body,
                kind,
                merchant_id=channel.merchant_id,
                channel_id=channel.id,
                account_id=channel.account_id,
                received_at=received_at,
            )
    except MalformedPayload as exc:
        metrics.WEBHOOKS.labels(kind, "malformed").inc()
        raise ProblemError(400, "Malformed webhook", str(exc)) from exc
    accepted = duplicates = 0
    for message in parsed.messages:
        with tracing.span(
            "inbox.append",
            merchant_id=channel.merchant_id,
            attributes={"kaleem.channel_kind": kind, "kaleem.message_id": message.message_id},
        ):
            if await deps.inbox.append(tracing.carry(message)):
                accepted += 1
            else:
                duplicates += 1
    for event in parsed.events:
        fields: dict[str, object] = {f"{event.kind}_at": event.at}
        if event.kind == "status":
            fields["status"] = event.value
            fields[f"{event.value}_at"] = event.at
            if event.detail:
                fields["error"] = event.detail
        elif event.kind == "reaction":
            fields["reaction"] = event.value
        else:
            fields["echoed"] = True
        await deps.records.record_delivery(
            channel.merchant_id, channel.id, event.provider_message_id, fields
        )
    if accepted:
        metrics.WEBHOOKS.labels(kind, "accepted").inc(accepted)
    if duplicates:
        metrics.WEBHOOKS.labels(kind, "duplicate").inc(duplicates)
    if parsed.events or parsed.ignored or not parsed.messages:
        metrics.WEBHOOKS.labels(kind, "ignored").inc(len(parsed.events) + parsed.ignored or 1)
    return web.Response(text="EVENT_RECEIVED", content_type="text/plain")
