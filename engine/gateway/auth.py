"""Who is calling: the operator (platform staff) or a merchant (by API key).

Operators may act for a merchant by naming it in ``X-Kaleem-Merchant``; that is how the CLI
imports a catalog for a merchant without holding its key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from engine.gateway.problems import ProblemError
from engine.records import Records
from engine.secrets import constant_time_equal, hash_api_key

MERCHANT_HEADER = "X-Kaleem-Merchant"


@dataclass(frozen=True, slots=True)
class Caller:
    merchant_id: str
    operator: bool = False


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            401,
            "Unauthorized",
            "send Authorization: Bearer <token>",
        )
    return token.strip()


def is_operator(token: str, admin_token: str) -> bool:
    return bool(admin_token) and constant_time_equal(token, admin_token)


class MerchantAuth:
    """Resolves API keys with a short L1 cache (keys are looked up on every admin call)."""

    def __init__(self, records: Records, admin_token: str, ttl_s: float = 30.0) -> None:
        self._records = records
        self._admin = admin_token
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def require_operator(self, request: web.Request) -> None:
        if not is_operator(bearer(request), self._admin):
            raise ProblemError(403, "Forbidden", "this route needs the operator token")

    async def require_merchant(self, request: web.Request) -> Caller:
        token = bearer(request)
        if is_operator(token, self._admin):
            merchant_id = request.headers.get(MERCHANT_HEADER, "")
            if not merchant_id:
                raise ProblemError(
                    400, "Merchant required", f"operators must name one in {MERCHANT_HEADER}"
                )
            if await self._records.merchant(merchant_id) is None:
                raise ProblemError(404, "Not found", "no such merchant")
            return Caller(merchant_id, operator=True)
        key = hash_api_key(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            merchant_id_or_none = hit[1]
        else:
            doc = await self._records.merchant_by_api_key(token)
            merchant_id_or_none = None if doc is None else str(doc["_id"])
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, merchant_id_or_none)
        if merchant_id_or_none is None:
            raise ProblemError(401, "Unauthorized", "unknown API key")
        return Caller(merchant_id_or_none)
