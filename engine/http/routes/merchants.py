"""The operator's route: create a merchant (and its root API key)."""

from __future__ import annotations

from engine.http import schemas as s
from engine.http.context import API
from engine.http.routing import OPERATOR, Ctx, Reply, Route


async def create_merchant(ctx: Ctx) -> Reply:
    body: s.MerchantIn = ctx.body
    merchant_id, api_key = await ctx.request.app[API].records.create_merchant(
        body.name, body.default_language
    )
    return Reply(201, {"id": merchant_id, "api_key": api_key})


ROUTES = [
    Route(
        "POST",
        "/api/v1/merchants",
        create_merchant,
        "Create a merchant (operator); the API key is shown once",
        "merchants",
        perm=OPERATOR,
        body=s.MerchantIn,
        response=s.MerchantCreated,
        status=201,
    ),
]
