"""The admin API's services, built once per gateway app from ``GatewayDeps``."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from aiohttp import web

from engine.adapters.records import Records, new_id
from engine.config import Settings
from engine.domain.retrieval import RetrievalPort
from engine.http.auth import Caller, MerchantAuth
from engine.http.deps import GatewayDeps
from engine.http.limits import LoginThrottle, RateLimiter
from engine.http.problems import ProblemError
from engine.http.tokens import TokenService
from engine.services.commerce import Commerce
from engine.services.gaps import KnowledgeGaps
from engine.services.ports import Document, DocumentStore

USERS = "users"
API_KEYS = "api_keys"
AUDIT = "audit"
NOTES = "conversation_notes"


def jwt_secret(settings: Settings) -> str:
    """An explicit secret, else one derived from the at-rest key (never the key itself)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    return hmac.new(settings.secret_key.encode(), b"kaleem-jwt-v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Api:
    deps: GatewayDeps
    records: Records
    store: DocumentStore
    tokens: TokenService
    throttle: LoginThrottle
    limiter: RateLimiter
    commerce: Commerce
    gaps: KnowledgeGaps
    auth: MerchantAuth
    retriever: RetrievalPort | None

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    async def owned(self, merchant_id: str, collection: str, record_id: str, what: str) -> Document:
        """This merchant's record, or 404 — never 403, so other tenants' ids are not revealed."""
        doc = await self.store.collection(collection).find_one(
            {"_id": record_id, "merchant_id": merchant_id}
        )
        if doc is None:
            raise ProblemError(404, "Not found", f"no such {what}")
        return doc

    async def owns(self, merchant_id: str, collection: str, record_id: str) -> bool:
        found = await self.store.collection(collection).find_one(
            {"_id": record_id, "merchant_id": merchant_id}, {"_id": 1}
        )
        return found is not None

    async def update_owned(
        self, merchant_id: str, collection: str, record_id: str, sets: Document, what: str
    ) -> Document:
        """``$set`` on this merchant's record and return it, or 404 (same rule as ``owned``)."""
        doc = await self.store.collection(collection).find_one_and_update(
            {"_id": record_id, "merchant_id": merchant_id}, {"$set": sets}
        )
        if doc is None:
            raise ProblemError(404, "Not found", f"no such {what}")
        return doc

    async def audit(
        self, merchant_id: str, actor: str, action: str, target: str | None, ip: str | None
    ) -> None:
        """Sensitive actions leave a trace: who, what, on what, from where (never secrets)."""
        now = time.time()
        await self.store.collection(AUDIT).insert_one(
            {
                "_id": f"au_{int(now * 1000):013d}_{new_id('x')[2:]}",
                "merchant_id": merchant_id,
                "actor": actor,
                "action": action,
                "target": target,
                "ip": ip,
                "at": now,
                "created_at": now,
            }
        )


class KeyDirectory:
    """Resolves API keys created through the admin API (hashed at rest, revocable)."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    async def resolve(self, key_hash: str) -> Caller | None:
        doc = await self._store.collection(API_KEYS).find_one({"key_hash": key_hash})
        if doc is None or doc.get("revoked_at"):
            return None
        return Caller(str(doc["merchant_id"]), role=str(doc["role"]), key_id=str(doc["_id"]))


API = web.AppKey("kaleem_api", Api)


@functools.lru_cache(maxsize=8)
def _proxy_networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or the ``X-Real-IP`` a trusted proxy (nginx) set.

    Behind nginx every peer is nginx, so without this every per-IP limit would count all
    customers as one; the header is only believed from ``KALEEM_TRUSTED_PROXIES``.
    """
    remote = request.remote or "unknown"
    proxies = request.app[API].settings.trusted_proxies if API in request.app else ()
    if not proxies:
        return remote
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if not any(peer in net for net in _proxy_networks(proxies)):
        return remote
    real = request.headers.get("X-Real-IP", "").strip()
    try:
        return str(ipaddress.ip_address(real))
    except ValueError:
        return remote
