"""A fake Telegram Bot API server on loopback, for end-to-end tests and benchmarks.

It speaks real HTTP so the whole send path (connection pool, timeouts, JSON, status handling)
is exercised, and it is written independently of ``connectors/telegram.py`` so a wrong
assumption there shows up as a failing test instead of being mirrored here.

It answers like Telegram does: ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": N, "description": "...", "parameters": {...}}``, rejects unknown tokens with
401, empty or over-long texts and non-web button URLs with 400, and can be told to fail
(429 with ``retry_after``, 5xx), to treat a chat as having blocked the bot (403), or to be
slow. Access logging is off: the bot token is part of every request path.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.gateways import listen

DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_0123456789abc"
MAX_TEXT_LEN = 4096

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(slots=True)
class FakeCall:
    """One request the fake received, whatever it answered."""

    token: str
    method: str  # Bot API method name as sent, e.g. "sendMessage"
    json: dict[str, Any]
    received_at: float  # time.monotonic() when the request arrived
    status: int = 0  # the HTTP status the fake answered (set just before answering)


@dataclass(slots=True)
class _Failure:
    status: int
    description: str
    retry_after: int | None
    method: str | None  # lower-cased method it applies to, None = any method


OnMessage = Callable[[FakeCall], Awaitable[None] | None]


class FakeTelegram:
    """Loopback Bot API. ``await start()`` returns the base URL to use as ``api_base``.

    ``on_message`` (sync or async) is called with each delivered ``sendMessage`` call before
    the fake answers it; benchmarks use it to timestamp arrivals.
    """

    def __init__(
        self,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: OnMessage | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.on_message = on_message
        self.base_url = ""
        self.calls: list[FakeCall] = []
        # Successful setWebhook payloads, per token: what the bot registered.
        self.webhooks: dict[str, dict[str, Any]] = {}
        self._known_tokens = set(tokens)
        self._failures: list[_Failure] = []
        self._blocked: set[str] = set()
        self._missing: set[str] = set()
        self._delay_s = 0.0
        self._delivered: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._message_ids: dict[str, itertools.count[int]] = {}
        # Safe outside a loop: since 3.10 asyncio primitives bind to the loop on first use.
        self._condition = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Listen on ``host:port`` (0 = an ephemeral port) and return ``http://host:port``."""
        if self._runner is not None:
            return self.base_url
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner, self.base_url = await listen(app, self.host, self.port)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- programming failures

    def add_token(self, token: str) -> None:
        self._known_tokens.add(token)

    def fail_next(
        self,
        n: int,
        status: int,
        retry_after: int | None = None,
        description: str | None = None,
        *,
        method: str | None = "sendMessage",
    ) -> None:
        """Answer the next ``n`` calls of ``method`` (None = any method) with ``status``."""
        text = description or _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        text = text.format(retry_after=retry_after if retry_after is not None else 1)
        for _ in range(n):
            self._failures.append(
                _Failure(status, text, retry_after, method.lower() if method else None)
            )

    def block_chat(self, chat_id: str | int) -> None:
        """Every later send to this chat gets 403 "bot was blocked by the user"."""
        self._blocked.add(str(chat_id))

    def unblock_chat(self, chat_id: str | int) -> None:
        self._blocked.discard(str(chat_id))

    def forget_chat(self, chat_id: str | int) -> None:
        """Every later send to this chat gets 400 "chat not found"."""
        self._missing.add(str(chat_id))

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (simulates Telegram's latency)."""
        self._delay_s = max(0.0, seconds)

    def reset(self) -> None:
        """Forget calls, deliveries and programmed behaviour; keep tokens and the listener."""
        self.calls.clear()
        self.webhooks.clear()
        self._failures.clear()
        self._blocked.clear()
        self._missing.clear()
        self._delay_s = 0.0
        self._delivered.clear()
        self._message_ids.clear()

    # ---------------------------------------------------------------- inspection

    def sent_to(self, chat_id: str | int) -> list[dict[str, Any]]:
        """The ``sendMessage`` payloads delivered (answered 200) to this chat, in order."""
        return list(self._delivered.get(str(chat_id), ()))

    async def wait_for_messages(
        self,
        chat_id: str | int,
        count: int,
        timeout: float,  # noqa: ASYNC109 - part of the fake's API; applied via asyncio.timeout
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were delivered to the chat; return them all.

        Woken by each delivery (no polling), so tests finish as soon as the reply lands.
        Raises ``TimeoutError`` saying how many arrived.
        """
        key = str(chat_id)
        try:
            async with asyncio.timeout(timeout), self._condition:
                await self._condition.wait_for(lambda: len(self._delivered.get(key, ())) >= count)
        except TimeoutError:
            got = len(self._delivered.get(key, ()))
            raise TimeoutError(
                f"chat {key}: {got} of {count} messages delivered within {timeout}s"
            ) from None
        return self.sent_to(key)

    # ---------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        token = request.match_info["token"]
        method = request.match_info["method"]
        payload, bad_json = await _read_payload(request)
        call = FakeCall(token=token, method=method, json=payload, received_at=received_at)
        self.calls.append(call)
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        status, body = await self._answer(call, bad_json)
        call.status = status
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    async def _answer(self, call: FakeCall, bad_json: bool) -> tuple[int, dict[str, Any]]:
        if call.token not in self._known_tokens:
            return _error(401, "Unauthorized")
        if bad_json:
            return _error(400, "Bad Request: can't parse JSON object")
        method = call.method.lower()
        failure = self._take_failure(method)
        if failure is not None:
            return _error(failure.status, failure.description, failure.retry_after)
        if method == "sendmessage":
            return await self._send_message(call)
        if method == "getme":
            return 200, {"ok": True, "result": _bot_user(call.token)}
        if method == "setwebhook":
            return self._set_webhook(call)
        if method == "deletewebhook":
            self.webhooks.pop(call.token, None)
            return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
        return _error(404, "Not Found")

    def _take_failure(self, method: str) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if failure.method is None or failure.method == method:
                return self._failures.pop(index)
        return None

    async def _send_message(self, call: FakeCall) -> tuple[int, dict[str, Any]]:
        payload = call.json
        chat_id = payload.get("chat_id")
        if not isinstance(chat_id, int | str) or isinstance(chat_id, bool) or chat_id == "":
            return _error(400, "Bad Request: chat_id is empty")
        key = str(chat_id)
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > MAX_TEXT_LEN:
            return _error(400, "Bad Request: message is too long")
        markup_error = _check_reply_markup(payload.get("reply_markup"))
        if markup_error:
            return _error(400, f"Bad Request: {markup_error}")
        if key in self._missing:
            return _error(400, "Bad Request: chat not found")
        if key in self._blocked:
            return _error(403, "Forbidden: bot was blocked by the user")

        message_id = next(self._message_ids.setdefault(key, itertools.count(1)))
        async with self._condition:
            self._delivered[key].append(payload)
            self._condition.notify_all()
        if self.on_message is not None:
            outcome = self.on_message(call)
            if inspect.isawaitable(outcome):
                await outcome
        result: dict[str, Any] = {
            "message_id": message_id,
            "from": _bot_user(call.token),
            "chat": {"id": chat_id, "type": "private", "first_name": "Sara"},
            "date": int(time.time()),
            "text": text,
        }
        if "reply_markup" in payload:
            result["reply_markup"] = payload["reply_markup"]
        return 200, {"ok": True, "result": result}

    def _set_webhook(self, call: FakeCall) -> tuple[int, dict[str, Any]]:
        url = call.json.get("url")
        if not isinstance(url, str):
            return _error(400, "Bad Request: bad webhook: url is required")
        if url == "":
            self.webhooks.pop(call.token, None)
            return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
        secret = call.json.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str)
            or not 1 <= len(secret) <= 256
            or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
        ):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.webhooks[call.token] = dict(call.json)
        return 200, {"ok": True, "result": True, "description": "Webhook was set"}


async def _read_payload(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The request's JSON object (or query/form parameters); ``True`` if the body was bad."""
    raw = await request.read()
    payload: dict[str, Any] = dict(request.query)
    if not raw:
        return payload, False
    if request.content_type == "application/json":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return payload, True
        if not isinstance(data, dict):
            return payload, True
        payload.update(data)
        return payload, False
    form = await request.post()
    payload.update({key: value for key, value in form.items() if isinstance(value, str)})
    return payload, False


def _check_reply_markup(markup: Any) -> str | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        return "can't parse reply keyboard markup JSON object"
    keyboard = markup.get("inline_keyboard")
    if keyboard is None:
        return None
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
    buttons = [button for row in keyboard for button in row]
    if len(buttons) > 100:
        return "too many inline keyboard buttons"
    for button in buttons:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            return "can't parse inline keyboard button: Text buttons are unallowed"
        url = button.get("url")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://", "tg://"))
        ):
            return "BUTTON_URL_INVALID"
    return None


def _error(
    status: int, description: str, retry_after: int | None = None
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return status, body


def _bot_user(token: str) -> dict[str, Any]:
    bot_id, _, _ = token.partition(":")
    return {
        "id": int(bot_id) if bot_id.isdigit() else 1,
        "is_bot": True,
        "first_name": "Kaleem Test Bot",
        "username": "kaleem_test_bot",
    }


def make_update(
    update_id: int, chat_id: int, text: str, first_name: str = "Sara"
) -> dict[str, Any]:
    """A realistic private-chat text ``Update`` as Telegram would POST it to the webhook."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {
                "id": chat_id,
                "is_bot": False,
                "first_name": first_name,
                "language_code": "ar",
            },
            "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }
