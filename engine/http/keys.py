"""Typed application state keys (aiohttp ``AppKey``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.adapters.providers import CachedChannels, ProviderClient
from engine.http.auth import MerchantAuth
from engine.http.deps import GatewayDeps
from engine.http.hub import ReplyHub
from engine.services.intake import Intake

DEPS = web.AppKey("deps", GatewayDeps)
AUTH = web.AppKey("auth", MerchantAuth)
HUB = web.AppKey("hub", ReplyHub)
CHANNELS = web.AppKey("channels", CachedChannels)
INTAKE = web.AppKey("intake", Intake)
PROVIDERS = web.AppKey("providers", ProviderClient)
# The OpenAPI document, built once from the route table when the app is created.
OPENAPI = web.AppKey("openapi", dict[str, Any])
