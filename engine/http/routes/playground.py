"""The playground: staff ask the bot through the very pipeline customers use, and wait for it."""

from __future__ import annotations

import asyncio
import time

from connectors import playground, webchat
from engine.http import schemas as s
from engine.http.context import API
from engine.http.keys import HUB
from engine.http.problems import ProblemError
from engine.http.routing import Ctx
from observability import metrics, tracing


async def playground_message(ctx: Ctx) -> dict[str, object]:
    body: s.PlaygroundIn = ctx.body
    api = ctx.request.app[API]
    started = time.perf_counter()
    message = playground.KIND.message(ctx.merchant_id, body.customer_id, body.text, time.time())
    hub = ctx.request.app[HUB]
    waiter = hub.expect(message.message_id)
    try:
        with tracing.span(
            "inbox.append",
            kind=tracing.SERVER,
            merchant_id=message.merchant_id,
            attributes={"kaleem.channel_kind": playground.CHANNEL_KIND},
        ):
            await api.deps.inbox.append(tracing.carry(message))
        reply = await asyncio.wait_for(waiter, timeout=api.settings.playground_timeout_s)
    except TimeoutError as exc:
        raise ProblemError(
            504, "Reply timed out", "the bot did not answer in time; the message is kept"
        ) from exc
    finally:
        hub.forget(message.message_id)
    metrics.PLAYGROUND_REPLY.observe(time.perf_counter() - started)
    return webchat.public_reply(reply)
