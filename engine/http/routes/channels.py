"""Channel admin routes (connect, list masked, disconnect) and the outbox dead-letter admin.

Connecting a Telegram channel registers its webhook (``setWebhook`` with ``secret_token``);
disconnecting calls ``deleteWebhook``. Meta channels are registered by the merchant in the Meta
app dashboard with the ``webhook_url`` and ``verify_token`` we answer here. Secrets are only
ever written encrypted (``Records`` + ``SecretBox``), shown masked, and never logged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
from aiohttp import web

from connectors import telegram
from connectors.base import Delivered
from engine.adapters.redis.queues import Outbox
from engine.http.auth import MERCHANT_HEADER, bearer, is_operator
from engine.http.keys import AUTH, CHANNELS, DEPS
from engine.http.problems import ProblemError, json_response, read_json_object, require_str

log = logging.getLogger(__name__)

KINDS = ("telegram", "whatsapp", "messenger", "instagram")
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_DIGITS = re.compile(r"^[0-9]{1,32}$")
_API_VERSION = re.compile(r"^v[0-9]{1,3}\.[0-9]{1,2}$")
_TEMPLATE = re.compile(r"^[a-z0-9_]{1,512}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
_CHANNEL_ID = re.compile(r"^ch_[0-9a-f]{16}$")


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "Validation failed",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def _api_base(data: dict[str, Any], default: str) -> str:
    api_base = (require_str(data, "api_base", max_len=512, required=False) or default).rstrip("/")
    if not api_base.startswith(("http://", "https://")):
        raise _invalid("api_base", "http(s) URL")
    return api_base


def _matching(data: dict[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    value = require_str(data, name, max_len=256, required=False)
    if value and not pattern.match(value):
        raise _invalid(name, what)
    return value


async def create_channel(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    deps = request.app[DEPS]
    data = await read_json_object(request, 16 * 1024)
    kind = require_str(data, "kind", max_len=32)
    if kind not in KINDS:
        raise ProblemError(
            422,
            "Validation failed",
            f"unsupported channel kind {kind!r}",
            errors=[{"field": "kind", "message": "supported: " + ", ".join(KINDS)}],
        )
    if kind == "telegram":
        return await _create_telegram(request, caller.merchant_id, data)
    app_secret = require_str(data, "app_secret", max_len=256)
    verify_token = require_str(data, "verify_token", max_len=256)
    api_version = (
        _matching(data, "api_version", _API_VERSION, "like v21.0")
        or deps.settings.graph_api_version
    )
    api_base = _api_base(data, deps.settings.graph_api_base)
    config: dict[str, str] = {"api_version": api_version}
    if kind == "whatsapp":
        account_id = require_str(data, "phone_number_id", max_len=32)
        token = require_str(data, "access_token", max_len=1024)
        config["phone_number_id"] = account_id
        template = _matching(data, "template_name", _TEMPLATE, "a-z 0-9 _")
        if template:
            config["template_name"] = template
            config["template_language"] = (
                _matching(data, "template_language", _LANGUAGE, "like en or en_US") or "en"
            )
    else:
        id_field = "ig_user_id" if kind == "instagram" and data.get("ig_user_id") else "page_id"
        account_id = require_str(data, id_field, max_len=32)
        config[id_field] = account_id
        token = require_str(data, "page_access_token", max_len=1024)
    if not _DIGITS.match(account_id):
        raise _invalid("phone_number_id" if kind == "whatsapp" else "page_id", "digits only")
    config["account_id"] = account_id
    channel_id = await deps.records.create_channel(
        caller.merchant_id,
        kind,
        api_base,
        secrets_={"access_token": token, "app_secret": app_secret, "verify_token": verify_token},
        config=config,
    )
    log.info("channel connected", extra={"channel_id": channel_id, "kind": kind})
    return json_response(
        {
            "id": channel_id,
            "kind": kind,
            "webhook_url": f"{deps.settings.base_url}/webhooks/{kind}/{channel_id}",
        },
        status=201,
    )


async def _create_telegram(
    request: web.Request, merchant_id: str, data: dict[str, Any]
) -> web.Response:
    deps = request.app[DEPS]
    bot_token = require_str(data, "bot_token", max_len=256)
    secret_token = require_str(data, "secret_token", max_len=256)
    if not _SECRET_TOKEN.match(secret_token):
        raise _invalid("secret_token", "1-256 of A-Z a-z 0-9 _ -")
    api_base = _api_base(data, deps.settings.telegram_api_base)
    try:
        telegram.build_delete_webhook(api_base, bot_token)  # validates the token's shape
    except ValueError as exc:
        raise _invalid("bot_token", str(exc)) from exc
    channel_id = await deps.records.create_channel(
        merchant_id, "telegram", api_base, bot_token, secret_token
    )
    webhook_url = f"{deps.settings.base_url}/webhooks/telegram/{channel_id}"
    registered, error = await _call_telegram(
        telegram.build_set_webhook(api_base, bot_token, webhook_url, secret_token)
    )
    log.info(
        "channel connected",
        extra={"channel_id": channel_id, "kind": "telegram", "webhook_registered": registered},
    )
    body: dict[str, Any] = {
        "id": channel_id,
        "kind": "telegram",
        "webhook_url": webhook_url,
        "webhook_registered": registered,
    }
    if error:
        body["webhook_error"] = error
    return json_response(body, status=201)


async def _call_telegram(call: Any) -> tuple[bool, str]:
    """One Bot API call at admin time; a failure is reported, never raised (the channel is
    stored either way and ``setWebhook`` can be retried by re-connecting)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.post(call.url, json=call.json) as resp,
        ):
            outcome = telegram.interpret_response(resp.status, await resp.read())
    except (TimeoutError, aiohttp.ClientError) as exc:
        return False, f"telegram unreachable: {type(exc).__name__}"
    if isinstance(outcome, Delivered):
        return True, ""
    return False, outcome.reason


async def list_channels(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    channels = await request.app[DEPS].records.list_channels(caller.merchant_id)
    return json_response({"channels": channels})


async def delete_channel(request: web.Request) -> web.Response:
    caller = await request.app[AUTH].require_merchant(request)
    channel_id = request.match_info["channel_id"]
    if not _CHANNEL_ID.match(channel_id):
        raise ProblemError(404, "Not found", "no such channel")
    channel = await request.app[DEPS].records.delete_channel(caller.merchant_id, channel_id)
    if channel is None:
        raise ProblemError(404, "Not found", "no such channel")
    request.app[CHANNELS].forget(channel_id)
    if channel.kind == "telegram" and channel.bot_token:
        ok, error = await _call_telegram(
            telegram.build_delete_webhook(channel.api_base, channel.bot_token)
        )
        if not ok:
            log.warning("deleteWebhook failed", extra={"channel_id": channel_id, "error": error})
    log.info("channel disconnected", extra={"channel_id": channel_id, "kind": channel.kind})
    return web.Response(status=204)


# -- outbox dead letters -----------------------------------------------------------------------
async def _scope(request: web.Request) -> str | None:
    """Operators without a merchant header see every merchant's dead letters."""
    deps = request.app[DEPS]
    if is_operator(bearer(request), deps.settings.admin_token) and not request.headers.get(
        MERCHANT_HEADER
    ):
        return None
    caller = await request.app[AUTH].require_merchant(request)
    return caller.merchant_id


async def list_dead_letters(request: web.Request) -> web.Response:
    merchant_id = await _scope(request)
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError as exc:
        raise _invalid("limit", "an integer 1-500") from exc
    if not 1 <= limit <= 500:
        raise _invalid("limit", "an integer 1-500")
    before = request.query.get("before", "+")
    if before != "+" and not _ENTRY_ID.match(before):
        raise _invalid("before", "a dead-letter id")
    items = await Outbox(request.app[DEPS].redis).dead_letters(merchant_id, limit, before)
    return json_response({"dead_letters": [_public(i) for i in items]})


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


async def replay_dead_letter(request: web.Request) -> web.Response:
    merchant_id = await _scope(request)
    entry_id = request.match_info["entry_id"]
    if not _ENTRY_ID.match(entry_id):
        raise ProblemError(404, "Not found", "no such dead letter")
    reply = await Outbox(request.app[DEPS].redis).replay_dead_letter(entry_id, merchant_id)
    if reply is None:
        raise ProblemError(404, "Not found", "no such dead letter")
    log.info("dead letter replayed", extra={"entry_id": entry_id, "outbox_id": reply.outbox_id})
    return json_response({"replayed": entry_id, "outbox_id": reply.outbox_id}, status=202)
