"""An OpenAI-compatible chat-completions client (``POST {LLM_BASE_URL}/chat/completions``).

Goes through the same egress guard as provider calls (engine/adapters/egress.py): https only
and never a private address unless ``KALEEM_ALLOW_PRIVATE_API_BASE`` (fakes on loopback), no
redirects, a bounded response. Every failure is a :class:`LanguageModelError`; the caller
falls back to the extractive reply.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from engine.adapters import egress
from engine.services.ports import Completion, LanguageModelError

MAX_RESPONSE_BYTES = 256 * 1024


def check_base_url(url: str, *, allow_private: bool) -> str | None:
    """Why ``LLM_BASE_URL`` cannot be used (for a start-up error), or None."""
    host = urlsplit(url).hostname or ""
    return egress.check_api_base(url, [host], allow_private=allow_private)


class OpenAICompatibleModel:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        model: str = "",
        timeout_s: float = 2.0,
        allow_private: bool = False,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._key = api_key
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = egress.session(allow_private=self._allow_private)
        return self._session

    async def complete(self, messages: list[dict[str, str]], *, max_tokens: int) -> Completion:
        if egress.refused_target(self._url, allow_private=self._allow_private):
            raise LanguageModelError(egress.BLOCKED)
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.2}
        if self._model:
            body["model"] = self._model
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        try:
            async with self._http().post(
                self._url,
                data=orjson.dumps(body),
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as r:
                raw = await r.content.read(MAX_RESPONSE_BYTES + 1)
                status = r.status
        except (TimeoutError, aiohttp.ClientError, egress.BlockedAddress) as exc:
            raise LanguageModelError(f"request failed: {type(exc).__name__}") from exc
        if status != 200:
            raise LanguageModelError(f"HTTP {status}")
        if len(raw) > MAX_RESPONSE_BYTES:
            raise LanguageModelError("response too large")
        return parse_completion(raw)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def parse_completion(raw: bytes) -> Completion:
    """``choices[0].message.content`` and ``usage.total_tokens`` of a chat-completions body."""
    try:
        data = orjson.loads(raw)
        content = data["choices"][0]["message"]["content"]
        usage = data.get("usage") or {}
        tokens = usage.get("total_tokens")
        if tokens is None:
            tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise LanguageModelError("malformed response") from None
    if not isinstance(content, str) or not isinstance(tokens, int) or tokens < 0:
        raise LanguageModelError("malformed response")
    return Completion(content, tokens)
