"""The I/O half of payment providers: one HTTP call, through the egress guard, read bounded.

What to send and what an answer means is the provider's (``connectors/payments``). The
session is opened on first use inside the running loop (no I/O at construction), never
follows redirects, and a refused or unreachable target answers status 0, never an exception.
"""

from __future__ import annotations

import aiohttp

from connectors.base import ProviderCall
from connectors.payments import MAX_BODY_BYTES
from engine.adapters import egress
from engine.services.payments import HttpAnswer


class PaymentClient:
    def __init__(self, *, allow_private: bool, timeout_s: float = 15.0) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, call: ProviderCall) -> HttpAnswer:
        if egress.refused_target(call.url, allow_private=self._allow_private):
            return HttpAnswer(0)
        if self._session is None or self._session.closed:
            self._session = egress.session(allow_private=self._allow_private)
        try:
            async with self._session.request(
                call.method,
                call.url,
                json=call.json,
                headers=call.headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                if 300 <= resp.status < 400:
                    return HttpAnswer(resp.status)
                return HttpAnswer(resp.status, await resp.content.read(MAX_BODY_BYTES))
        except (TimeoutError, aiohttp.ClientError, egress.BlockedAddress):
            return HttpAnswer(0)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
