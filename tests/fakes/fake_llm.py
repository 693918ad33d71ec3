"""A fake OpenAI-compatible chat-completions server on loopback (``POST /v1/chat/completions``).

It answers in the real wire format (``choices[0].message.content``, ``usage`` with
``prompt_tokens`` / ``completion_tokens`` / ``total_tokens``), errors like the real API
(``{"error": {"message", "type"}}`` with a 4xx/5xx), and can be told what to say (a function of
the request's messages), to be slow, to fail with a status, or to send a body that is not JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Reply = Callable[[list[dict[str, Any]]], str]


DRAFT_MARKER = "Draft reply to rephrase:\n"


def draft_of(messages: list[dict[str, Any]]) -> str:
    """What a model asked to rephrase reads as the draft: the user message after the engine's
    "Draft reply to rephrase:" line (engine.services.phrasing.prompt), else all of it."""
    user = str(next((m["content"] for m in reversed(messages) if m.get("role") == "user"), ""))
    return user.split(DRAFT_MARKER, 1)[-1].strip()


@dataclass
class FakeLLM:
    reply: Reply = field(default=lambda messages: draft_of(messages))
    delay_s: float = 0.0
    status: int = 200
    garbage: bool = False
    prompt_tokens: int = 40
    completion_tokens: int = 10
    calls: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> FakeLLM:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self, **changes: Any) -> None:
        self.reply = changes.pop("reply", lambda messages: draft_of(messages))
        self.delay_s = changes.pop("delay_s", 0.0)
        self.status = changes.pop("status", 200)
        self.garbage = changes.pop("garbage", False)
        self.completion_tokens = changes.pop("completion_tokens", 10)
        self.calls.clear()
        if changes:
            raise TypeError(f"unknown fake settings: {sorted(changes)}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
            messages = body["messages"]
            assert isinstance(messages, list) and messages
        except (orjson.JSONDecodeError, KeyError, AssertionError, TypeError):
            return _error(400, "invalid_request_error", "messages is required")
        self.calls.append({"body": body, "headers": dict(request.headers)})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return _error(self.status, "server_error", "The server had an error")
        if self.garbage:
            return web.Response(body=b'{"choices": [', content_type="application/json")
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        return web.json_response(
            {
                "id": f"chatcmpl-fake{len(self.calls)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or "fake-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply(messages)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)
