"""The operator's route: create a merchant (and its root API key)."""

from __future__ import annotations

from engine.http import schemas as s
from engine.http.context import API
from engine.http.routing import Ctx, Reply


async def create_merchant(ctx: Ctx) -> Reply:
    body: s.MerchantIn = ctx.body
    merchant_id, api_key = await ctx.request.app[API].records.create_merchant(
        body.name, body.default_language
    )
    return Reply(201, {"id": merchant_id, "api_key": api_key})
