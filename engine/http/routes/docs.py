"""The API's own description: the OpenAPI document and a dependency-free reference page."""

from __future__ import annotations

from aiohttp import web

from engine.http import openapi
from engine.http.keys import OPENAPI
from engine.http.routing import Ctx


async def openapi_json(ctx: Ctx) -> web.Response:
    return web.json_response(ctx.request.app[OPENAPI])


async def docs(ctx: Ctx) -> web.Response:
    return web.Response(text=openapi.docs_page(ctx.request.app[OPENAPI]), content_type="text/html")
