"""Typed application state keys (aiohttp ``AppKey``)."""

from __future__ import annotations

from aiohttp import web

from engine.adapters.providers import CachedChannels
from engine.http.auth import MerchantAuth
from engine.http.deps import GatewayDeps
from engine.http.hub import ReplyHub

DEPS = web.AppKey("deps", GatewayDeps)
AUTH = web.AppKey("auth", MerchantAuth)
HUB = web.AppKey("hub", ReplyHub)
CHANNELS = web.AppKey("channels", CachedChannels)
