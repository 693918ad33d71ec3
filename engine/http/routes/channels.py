"""Channel admin routes (connect, list masked, disconnect) and the outbox dead letters.

What a connect request holds, how it is stored and which provider call registers the webhook
(Telegram's ``setWebhook``; Meta products are registered by the merchant in the Meta app
dashboard with the ``webhook_url`` and ``verify_token``) is each channel kind's own
(``connectors/``); this module only runs it. Secrets are only ever written encrypted, shown
masked, and never logged.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, RootModel

from connectors import registry
from connectors.base import ChannelKind, Delivered, ProviderCall
from engine.adapters import egress
from engine.adapters.providers import provider_defaults
from engine.adapters.redis.queues import Outbox
from engine.http import schemas as s
from engine.http.context import API
from engine.http.keys import CHANNELS, PROVIDERS
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply

log = logging.getLogger(__name__)

_CHANNEL_ID = re.compile(r"^ch_[0-9a-f]{16}$")


def _channel_in() -> type[BaseModel]:
    """One connect form per connectable kind, told apart by ``kind``; built from the registry,
    so a new kind's form is validated and documented here without touching this module."""
    forms: Any = Annotated[Union[registry.connectable()], Field(discriminator="kind")]  # noqa: UP007
    model: type[BaseModel] = type(
        "ChannelIn",
        (RootModel[forms],),
        {"__module__": __name__, "__doc__": "A channel to connect (one form per kind)."},
    )
    model.union_tags = frozenset(  # type: ignore[attr-defined]
        spec.kind for spec in registry.KINDS.values() if spec.connect is not None
    )
    return model


ChannelIn = _channel_in()


async def create_channel(ctx: Ctx) -> Reply:
    api = ctx.request.app[API]
    body = ctx.body.root
    spec = registry.KINDS[body.kind]
    draft = spec.draft(body, provider_defaults(api.settings))
    settings = api.settings
    refusal = egress.check_api_base(
        draft.api_base,
        (*spec.api_hosts, *settings.provider_hosts),
        allow_private=settings.allow_private_api_base,
    )
    if refusal is not None:
        raise ProblemError(
            422,
            "Validation failed",
            f"api_base: must be {refusal}",
            errors=[{"field": "api_base", "message": f"must be {refusal}"}],
        )
    channel_id = await api.records.create_channel(
        ctx.merchant_id, spec.kind, draft.api_base, secrets_=draft.secrets, config=draft.config
    )
    webhook_url = f"{api.settings.base_url}/webhooks/{spec.kind}/{channel_id}"
    out: dict[str, Any] = {"id": channel_id, "kind": spec.kind, "webhook_url": webhook_url}
    channel = await api.records.channel(channel_id)
    call = spec.on_connect(channel, webhook_url) if channel is not None else None
    if call is not None:
        ok, error = await _connect_call(ctx, spec, call)
        out["webhook_registered"] = ok
        if error:
            out["webhook_error"] = error
    log.info(
        "channel connected",
        extra={"channel_id": channel_id, "kind": spec.kind, **_registered(out)},
    )
    return Reply(201, out)


def _registered(out: dict[str, Any]) -> dict[str, Any]:
    return {"webhook_registered": out["webhook_registered"]} if "webhook_registered" in out else {}


async def _connect_call(ctx: Ctx, spec: ChannelKind, call: ProviderCall) -> tuple[bool, str]:
    """One admin-time provider call; a failure is reported, never raised (the channel is
    stored either way and the webhook can be registered again by re-connecting)."""
    outcome = await ctx.request.app[PROVIDERS].call(spec, call)
    if isinstance(outcome, Delivered):
        return True, ""
    return False, outcome.reason


async def list_channels(ctx: Ctx) -> dict[str, Any]:
    return {"channels": await ctx.request.app[API].records.list_channels(ctx.merchant_id)}


async def channel_exists(ctx: Ctx) -> bool:
    channel = await ctx.request.app[API].records.channel(ctx.path["channel_id"])
    return channel is not None and channel.merchant_id == ctx.merchant_id


async def delete_channel(ctx: Ctx) -> Reply:
    api = ctx.request.app[API]
    channel_id = ctx.path["channel_id"]
    if not _CHANNEL_ID.match(channel_id):
        raise ProblemError(404, "Not found", "no such channel")
    channel = await api.records.delete_channel(ctx.merchant_id, channel_id)
    if channel is None:
        raise ProblemError(404, "Not found", "no such channel")
    ctx.request.app[CHANNELS].forget(channel_id)
    spec = registry.KINDS.get(channel.kind)
    call = spec.on_disconnect(channel) if spec is not None else None
    if spec is not None and call is not None:
        ok, error = await _connect_call(ctx, spec, call)
        if not ok:
            log.warning("webhook removal failed", extra={"channel_id": channel_id, "error": error})
    log.info("channel disconnected", extra={"channel_id": channel_id, "kind": channel.kind})
    return Reply(204, None)


# -- outbox dead letters -----------------------------------------------------------------------
def _public(item: dict[str, Any]) -> dict[str, Any]:
    reply = item["reply"]
    return {
        "id": item["id"],
        "reason": item.get("reason"),
        "attempts": item.get("attempts"),
        "at": item.get("at"),
        "merchant_id": reply.get("merchant_id"),
        "channel_id": reply.get("channel_id"),
        "channel_kind": reply.get("channel_kind"),
        "customer_id": reply.get("customer_id"),
        "outbox_id": reply.get("outbox_id"),
    }


async def list_dead_letters(ctx: Ctx) -> dict[str, Any]:
    """Operators without a merchant header see every merchant's dead letters."""
    q: s.DeadLetterQuery = ctx.query
    outbox = Outbox(ctx.request.app[API].deps.redis)
    items = await outbox.dead_letters(ctx.scope, q.limit, q.before)
    return {"dead_letters": [_public(i) for i in items]}


_ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


async def dead_letter_exists(ctx: Ctx) -> bool:
    entry_id = ctx.path["entry_id"]
    if not _ENTRY_ID.match(entry_id):
        return False
    outbox = Outbox(ctx.request.app[API].deps.redis)
    return await outbox.find_dead_letter(entry_id, ctx.scope) is not None


async def replay_dead_letter(ctx: Ctx) -> Reply:
    entry_id = ctx.path["entry_id"]
    if not _ENTRY_ID.match(entry_id):
        raise ProblemError(404, "Not found", "no such dead letter")
    reply = await Outbox(ctx.request.app[API].deps.redis).replay_dead_letter(entry_id, ctx.scope)
    if reply is None:
        raise ProblemError(404, "Not found", "no such dead letter")
    log.info("dead letter replayed", extra={"entry_id": entry_id, "outbox_id": reply.outbox_id})
    return Reply(202, {"replayed": entry_id, "outbox_id": reply.outbox_id})


CH = "/api/v1/channels"
DL = "/api/v1/outbox/dead-letters"
