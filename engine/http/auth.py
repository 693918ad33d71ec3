"""Who is calling: the operator (platform staff), a merchant server (API key) or a user (JWT).

Operators may act for a merchant by naming it in ``X-Kaleem-Merchant``; that is how the CLI
imports a catalog for a merchant without holding its key. Users send a short-lived access JWT;
the app factory plugs the verifier and the API-key directory in with ``MerchantAuth.use`` so
this module stays free of JWT and user storage details. What a caller may do is declared once,
per route (``engine.http.routing``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from engine.adapters.records import Records
from engine.adapters.secrets import constant_time_equal, hash_api_key
from engine.http.problems import ProblemError

MERCHANT_HEADER = "X-Kaleem-Merchant"
# ``Caller.key_id`` of the merchant's root key (the one made with the merchant), so its live
# sockets can be ended by name when it is rotated, like any other key.
ROOT_KEY_ID = "root"


@dataclass(frozen=True, slots=True)
class Caller:
    merchant_id: str
    operator: bool = False
    role: str = "owner"  # API keys act as "admin"; users carry their own role
    user_id: str | None = None
    key_id: str | None = None
    token_id: str | None = None  # the access token's jti (logout blacklists it)
    token_exp: float = 0.0


class AccessVerifier(Protocol):
    """Verifies a user's access JWT (signature, expiry, blacklist); None when not a JWT."""

    def looks_like(self, token: str) -> bool: ...

    async def verify(self, token: str) -> Caller: ...


class KeyDirectory(Protocol):
    """Merchant API keys created through the admin API (hashed, revocable)."""

    async def resolve(self, key_hash: str) -> Caller | None: ...


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
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._verifier: AccessVerifier | None = None
        self._keys: KeyDirectory | None = None

    def use(self, verifier: AccessVerifier, keys: KeyDirectory) -> None:
        """Plug in user tokens and the API-key directory (done by the admin API at start)."""
        self._verifier = verifier
        self._keys = keys

    def forget(self, key_hash: str) -> None:
        """Drop a cached key at once (revocation on this replica; others within ``ttl_s``)."""
        self._cache.pop(key_hash, None)

    def require_operator(self, request: web.Request) -> Caller:
        if not is_operator(bearer(request), self._admin):
            raise ProblemError(403, "Forbidden", "this route needs the operator token")
        return Caller("", operator=True)

    async def require_merchant(
        self, request: web.Request, *, any_merchant: bool = False, fresh: bool = False
    ) -> Caller:
        """The caller and the merchant it acts for. ``any_merchant``: an operator who names no
        merchant acts for all of them (``Caller.merchant_id`` is empty). ``fresh``: skip the
        key cache (a long-lived socket re-checking that its key was not revoked)."""
        token = bearer(request)
        if is_operator(token, self._admin):
            merchant_id = request.headers.get(MERCHANT_HEADER, "")
            if not merchant_id and any_merchant:
                return Caller("", operator=True)
            if not merchant_id:
                raise ProblemError(
                    400, "Merchant required", f"operators must name one in {MERCHANT_HEADER}"
                )
            if await self._records.merchant(merchant_id) is None:
                raise ProblemError(404, "Not found", "no such merchant")
            return Caller(merchant_id, operator=True)
        if self._verifier is not None and self._verifier.looks_like(token):
            return await self._verifier.verify(token)
        key = hash_api_key(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl and not fresh:
            found = hit[1]
        else:
            doc = await self._records.merchant_by_api_key(token)
            found = (
                None if doc is None else Caller(str(doc["_id"]), role="admin", key_id=ROOT_KEY_ID)
            )
            if found is None and self._keys is not None:
                found = await self._keys.resolve(key)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, found)
        if found is None:
            raise ProblemError(401, "Unauthorized", "unknown API key")
        return found
