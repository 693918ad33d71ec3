"""The store platforms' HTTP: one aiohttp session through the egress guard (no private
addresses unless allowed, no redirects), answers read up to a bound."""

from __future__ import annotations

from typing import Final

import aiohttp

from connectors.stores.base import StoreRequest, StoreResponse
from engine.adapters import egress
from engine.services.ports import StoreUnreachable

# A catalogue page of 250 products with descriptions stays well under this.
MAX_PAGE_BYTES: Final = 8 * 1024 * 1024


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole answer up to ``limit`` bytes. One ``read(n)`` returns what has arrived so far
    (a chunk), not ``n`` bytes, so a page answered in several chunks would be cut short."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise StoreUnreachable("answer too large")


class EgressStoreHttp:
    def __init__(self, *, allow_private: bool, timeout_s: float = 30.0) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = egress.session(allow_private=self._allow_private)
        return self._session

    async def send(self, request: StoreRequest) -> StoreResponse:
        if egress.refused_target(request.url, allow_private=self._allow_private):
            raise StoreUnreachable(egress.BLOCKED)
        try:
            async with self._client().request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=dict(request.form) if request.form is not None else None,
                json=dict(request.json) if request.json is not None else None,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                body = await _read_bounded(resp.content, MAX_PAGE_BYTES)
                return StoreResponse(resp.status, dict(resp.headers), body)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise StoreUnreachable("unreachable") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
