"""Store-platform integrations (Salla, Zid, Shopify): connect, show sync progress, disconnect.

Connecting stores the credentials encrypted and asks the indexer actor for the first
catalogue sync (it also runs the periodic ones); the reply does not wait for it. What a
platform's requests and pages look like is ``connectors/stores``'; the sync is
``engine.services.store_sync``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from connectors.stores import registry
from engine.adapters import egress
from engine.domain.integrations import CONNECTED, DISCONNECTED, INTEGRATION_ID, webhook_url
from engine.http import schemas as s
from engine.http.context import client_ip, found
from engine.http.deps import StoreDesk
from engine.http.problems import ProblemError
from engine.http.routing import Ctx, Reply

log = logging.getLogger(__name__)

IN = "/api/v1/integrations"
# The disconnect waits this long at most for the platform to drop our subscriptions.
UNSUBSCRIBE_TIMEOUT_S: Final = 10.0
_ID = INTEGRATION_ID


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "Validation failed",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


async def create_integration(ctx: Ctx) -> Reply:
    body: s.IntegrationIn = ctx.body
    spec = registry.KINDS[body.kind]
    credentials = dict(body.credentials)
    for name in spec.required:
        if not credentials.get(name):
            raise _invalid(f"credentials.{name}", "required")
    for name in credentials:
        if name not in spec.required and name not in spec.optional:
            raise _invalid(f"credentials.{name}", "not a credential of this platform")
    try:
        default = spec.default_api_base(credentials)
    except ValueError as exc:
        raise _invalid("credentials.shop", str(exc)) from None
    api_base = (body.api_base or default).rstrip("/")
    settings = ctx.api.settings
    hosts = spec.api_hosts or ((egress_host(default),) if default else ())
    refusal = egress.check_api_base(
        api_base, (*hosts, *settings.provider_hosts), allow_private=settings.allow_private_api_base
    )
    if refusal is not None:
        raise _invalid("api_base", f"must be {refusal}")
    desk = _desk(ctx)
    integration = await desk.vault.create(ctx.merchant_id, spec.kind, api_base, credentials)
    await ctx.api.audit(
        ctx.merchant_id, ctx.actor, "integration.connect", integration.id, client_ip(ctx.request)
    )
    desk.start_sync(integration.id)
    log.info("store connected", extra={"integration_id": integration.id, "kind": spec.kind})
    return Reply(
        201,
        {
            "id": integration.id,
            "kind": spec.kind,
            "webhook_url": webhook_url(settings.base_url, spec.kind, integration.id),
            "status": CONNECTED,
        },
    )


def egress_host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].lower()


async def list_integrations(ctx: Ctx) -> dict[str, Any]:
    return {"items": await _desk(ctx).vault.for_merchant(ctx.merchant_id)}


async def get_integration(ctx: Ctx) -> dict[str, Any]:
    view = await _owned(ctx)
    return found(view, "integration")


async def integration_exists(ctx: Ctx) -> bool:
    return await _owned(ctx) is not None


async def delete_integration(ctx: Ctx) -> Reply:
    integration_id = ctx.path["integration_id"]
    desk = _desk(ctx)
    if _ID.match(integration_id):
        await _unsubscribe(desk, ctx.merchant_id, integration_id)
    if not _ID.match(integration_id) or not await desk.vault.disconnect(
        ctx.merchant_id, integration_id, time.time()
    ):
        raise ProblemError(404, "Not found", "no such integration")
    await ctx.api.audit(
        ctx.merchant_id, ctx.actor, "integration.disconnect", integration_id, client_ip(ctx.request)
    )
    log.info("store disconnected", extra={"integration_id": integration_id})
    return Reply(204, None)


async def _unsubscribe(desk: StoreDesk, merchant_id: str, integration_id: str) -> None:
    """Ask the platform to stop delivering, while the credentials still exist; bounded, and
    whatever happens the disconnect goes on (a platform that keeps delivering meets 404)."""
    integration = await desk.vault.get(integration_id)
    if (
        integration is None
        or integration.merchant_id != merchant_id
        or integration.status == DISCONNECTED
    ):
        return
    try:
        async with asyncio.timeout(UNSUBSCRIBE_TIMEOUT_S):
            await desk.sync.unsubscribe(integration)
    except TimeoutError:
        log.warning("store webhook unsubscribe timed out", extra={"integration_id": integration_id})


async def _owned(ctx: Ctx) -> dict[str, Any] | None:
    integration_id = ctx.path["integration_id"]
    if not _ID.match(integration_id):
        return None
    view = await _desk(ctx).vault.get_owned(ctx.merchant_id, integration_id)
    if view is None or view["status"] == "disconnected":
        return None
    return view


def _desk(ctx: Ctx) -> StoreDesk:
    desk = ctx.api.deps.stores
    if desk is None:
        raise ProblemError(503, "Unavailable", "store integrations are not available here")
    return desk
