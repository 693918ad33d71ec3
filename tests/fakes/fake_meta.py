"""A fake Meta Graph API (WhatsApp Cloud, Messenger, Instagram Send API) on loopback.

Written from Meta's documented wire format, independently of ``connectors/``: sends are
``POST /{version}/{phone_number_id|page_id|ig_id}/messages`` with ``Authorization: Bearer``;
success answers are WhatsApp's ``{"messaging_product", "contacts", "messages": [{"id"}]}`` or
Messenger's ``{"recipient_id", "message_id"}``; errors are the Graph envelope
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``.

It can be told to fail the way Meta fails: 130429 (throughput), 131056 (pair rate limit),
190 (invalid token), 131047 (outside the 24-hour window), 429 with ``Retry-After``, bursts of
5xx, a whole outage (``go_down``/``come_back``), and slow answers. Payload rules it enforces
(text limits, interactive limits, template shape) make a wrong builder fail loudly.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.gateways import listen

WA_TEXT_LIMIT = 4096
MESSENGER_TEXT_LIMIT = 2000
INSTAGRAM_TEXT_BYTES = 1000


@dataclass(slots=True)
class _Failure:
    status: int
    code: int | None
    message: str
    retry_after: int | None
    subcode: int | None = None


class FakeMeta:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.base_url = ""
        self.calls: list[dict[str, Any]] = []
        self._accounts: dict[str, tuple[str, str]] = {}  # account id -> (kind, token)
        self._failures: list[_Failure] = []
        self._down = False
        self._delay_s = 0.0
        self._delivered: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ids = itertools.count(1)
        self._condition = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeMeta:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{version}/{account}/messages", self._handle)
        self._runner, self.base_url = await listen(app, self.host, 0)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ programming
    def add_account(self, kind: str, account_id: str, token: str) -> None:
        """Register a WhatsApp number / page / Instagram account and its valid token."""
        self._accounts[account_id] = (kind, token)

    def fail_next(
        self,
        n: int,
        status: int = 400,
        code: int | None = None,
        message: str = "",
        retry_after: int | None = None,
        subcode: int | None = None,
    ) -> None:
        for _ in range(n):
            self._failures.append(
                _Failure(status, code, message or f"fake error {code}", retry_after, subcode)
            )

    def go_down(self) -> None:
        """Every call gets 503 until :meth:`come_back` (a platform outage)."""
        self._down = True

    def come_back(self) -> None:
        self._down = False

    def set_delay(self, seconds: float) -> None:
        self._delay_s = max(0.0, seconds)

    def reset(self) -> None:
        self.calls.clear()
        self._failures.clear()
        self._down = False
        self._delay_s = 0.0
        self._delivered.clear()

    # ------------------------------------------------------------------ inspection
    def sent_to(self, recipient: str) -> list[dict[str, Any]]:
        return list(self._delivered.get(recipient, ()))

    async def wait_for_messages(
        self,
        recipient: str,
        count: int,
        timeout: float,  # noqa: ASYNC109 - part of the fake's API
    ) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(timeout), self._condition:
                await self._condition.wait_for(
                    lambda: len(self._delivered.get(recipient, ())) >= count
                )
        except TimeoutError:
            got = len(self._delivered.get(recipient, ()))
            raise TimeoutError(f"{recipient}: {got} of {count} delivered in {timeout}s") from None
        return self.sent_to(recipient)

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: web.Request) -> web.Response:
        account = request.match_info["account"]
        raw = await request.read()
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else request.query.get("access_token", "")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        self.calls.append({"account": account, "json": payload, "at": time.monotonic()})
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        if self._down:
            return _error(503, 2, "Service temporarily unavailable", "OAuthException")
        known = self._accounts.get(account)
        if known is None:
            return _error(
                400, 100, "Unsupported post request. Object does not exist", "GraphMethodException"
            )
        kind, expected = known
        if token != expected:
            return _error(
                401, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException"
            )
        if self._failures:
            f = self._failures.pop(0)
            headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            return _error(f.status, f.code, f.message, "OAuthException", headers, f.subcode)
        if not isinstance(payload, dict):
            return _error(400, 100, "Invalid parameter", "OAuthException")
        problem = (
            _check_whatsapp(payload) if kind == "whatsapp" else _check_messenger(payload, kind)
        )
        if problem:
            return _error(400, 100, f"Invalid parameter: {problem}", "OAuthException")
        recipient = str(payload["to"] if kind == "whatsapp" else payload["recipient"]["id"])
        n = next(self._ids)
        async with self._condition:
            self._delivered[recipient].append(payload)
            self._condition.notify_all()
        if kind == "whatsapp":
            body: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": recipient, "wa_id": recipient}],
                "messages": [{"id": f"wamid.FAKE{n:010d}"}],
            }
        else:
            body = {"recipient_id": recipient, "message_id": f"m_FAKE{n:010d}"}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _error(
    status: int,
    code: int | None,
    message: str,
    type_: str,
    headers: dict[str, str] | None = None,
    subcode: int | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": type_, "fbtrace_id": "AFakeTrace"}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    return web.Response(
        status=status,
        body=orjson.dumps({"error": error}),
        content_type="application/json",
        headers=headers or {},
    )


def _check_whatsapp(p: dict[str, Any]) -> str:
    if p.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not isinstance(p.get("to"), str) or not p["to"]:
        return "to is required"
    kind = p.get("type")
    if kind == "text":
        body = (p.get("text") or {}).get("body")
        if not isinstance(body, str) or not body.strip():
            return "text.body is required"
        if len(body) > WA_TEXT_LIMIT:
            return "text.body too long"
        return ""
    if kind == "interactive":
        inter = p.get("interactive") or {}
        body = (inter.get("body") or {}).get("text", "")
        if not body or len(body) > 1024:
            return "interactive.body.text must be 1-1024 characters"
        action = inter.get("action") or {}
        if inter.get("type") == "button":
            buttons = action.get("buttons") or []
            if not 1 <= len(buttons) <= 3:
                return "1-3 buttons"
            if any(len(b["reply"]["title"]) > 20 for b in buttons):
                return "button title over 20 characters"
            return ""
        if inter.get("type") == "list":
            rows = [r for s in action.get("sections") or [] for r in s.get("rows") or []]
            if not 1 <= len(rows) <= 10:
                return "1-10 rows"
            if any(len(r["title"]) > 24 or len(r.get("description", "")) > 72 for r in rows):
                return "row title/description too long"
            if len({r["id"] for r in rows}) != len(rows):
                return "row ids must be unique"
            if len(action.get("button", "")) > 20:
                return "list button over 20 characters"
            return ""
        return "unknown interactive type"
    if kind == "template":
        template = p.get("template") or {}
        if not template.get("name") or not (template.get("language") or {}).get("code"):
            return "template name and language.code are required"
        return ""
    if kind == "image":
        return "" if (p.get("image") or {}).get("link") else "image.link is required"
    return f"unsupported type {kind!r}"


def _check_messenger(p: dict[str, Any], kind: str) -> str:
    recipient = p.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("id"):
        return "recipient.id is required"
    if p.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return "messaging_type is required"
    if p.get("messaging_type") == "MESSAGE_TAG" and p.get("tag") != "HUMAN_AGENT":
        return "unsupported tag"
    message = p.get("message")
    if not isinstance(message, dict):
        return "message is required"
    text = message.get("text")
    if text is not None:
        if kind == "instagram" and len(text.encode()) > INSTAGRAM_TEXT_BYTES:
            return "text over 1000 bytes"
        if kind == "messenger" and len(text) > MESSENGER_TEXT_LIMIT:
            return "text over 2000 characters"
        return ""
    attachment = message.get("attachment")
    if not isinstance(attachment, dict):
        return "message needs text or attachment"
    if attachment.get("type") == "template":
        elements = (attachment.get("payload") or {}).get("elements") or []
        if not 1 <= len(elements) <= 10:
            return "1-10 elements"
        for e in elements:
            if len(e.get("title", "")) > 80 or not 1 <= len(e.get("buttons") or []) <= 3:
                return "bad element"
        if len(message.get("quick_replies") or []) > 13:
            return "too many quick replies"
    return ""


# ---------------------------------------------------------------------- webhook payloads
def whatsapp_webhook(
    phone_number_id: str,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = [{"profile": {"name": n}, "wa_id": w} for w, n in contacts]
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"value": value, "field": "messages"}]}],
    }


def wa_text(sender: str, wamid: str, text: str) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }


def messaging_webhook(kind: str, account_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """``object: page`` (Messenger) or ``object: instagram``; one entry per item, as Meta
    batches them."""
    return {
        "object": "page" if kind == "messenger" else "instagram",
        "entry": [
            {"id": account_id, "time": int(time.time() * 1000), "messaging": [item]}
            for item in items
        ],
    }


def messaging_text(sender: str, account_id: str, mid: str, text: str) -> dict[str, Any]:
    return {
        "sender": {"id": sender},
        "recipient": {"id": account_id},
        "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": text},
    }
