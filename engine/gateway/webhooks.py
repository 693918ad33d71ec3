"""Provider webhooks: verify on the raw body, parse, dedupe + durable append, then 200.

Nothing is parsed before the signature check, and nothing is acknowledged before the message
is durable in the inbox: a crash between the two makes the provider redeliver, and the dedupe
key turns that redelivery into a no-op.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from connectors import telegram
from connectors.base import MalformedPayload
from engine.gateway.keys import CHANNELS, DEPS
from engine.gateway.problems import ProblemError, json_response, read_limited
from observability import metrics

log = logging.getLogger(__name__)


async def telegram_webhook(request: web.Request) -> web.Response:
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
    accepted = await deps.inbox.append(message)
    metrics.WEBHOOKS.labels("telegram", "accepted" if accepted else "duplicate").inc()
    return json_response({"ok": True})
