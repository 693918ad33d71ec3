"""Typed application state keys (aiohttp ``AppKey``)."""

from __future__ import annotations

from aiohttp import web

from engine.gateway.auth import MerchantAuth
from engine.gateway.deps import GatewayDeps
from engine.gateway.hub import ReplyHub
from engine.senders import CachedChannels

DEPS = web.AppKey("deps", GatewayDeps)
AUTH = web.AppKey("auth", MerchantAuth)
HUB = web.AppKey("hub", ReplyHub)
CHANNELS = web.AppKey("channels", CachedChannels)
