"""The admin API's services, built once per gateway app from ``GatewayDeps``."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from engine.adapters.records import Records, new_id
from engine.adapters.redis.idempotency import IdempotencyStore
from engine.config import Settings
from engine.domain.retrieval import RetrievalPort
from engine.http.auth import Caller, MerchantAuth
from engine.http.deps import GatewayDeps
from engine.http.limits import LoginThrottle, RateLimiter
from engine.http.problems import ProblemError
from engine.http.tokens import TokenService
from engine.services.catalog_admin import CatalogAdmin
from engine.services.commerce import Commerce
from engine.services.gaps import KnowledgeGaps
from engine.services.identity import Sessions, Team
from engine.services.payments import Payments
from engine.services.ports import Document
from engine.services.repositories import Repositories
from engine.services.settlement import Settlements
from engine.services.staff import StaffDesk


def jwt_secret(settings: Settings) -> str:
    """An explicit secret, else one derived from the at-rest key (never the key itself)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    return hmac.new(settings.secret_key.encode(), b"kaleem-jwt-v1", hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Api:
    deps: GatewayDeps
    records: Records
    repos: Repositories
    tokens: TokenService
    throttle: LoginThrottle
    limiter: RateLimiter
    commerce: Commerce
    gaps: KnowledgeGaps
    auth: MerchantAuth
    idempotency: IdempotencyStore
    staff: StaffDesk
    catalog: CatalogAdmin
    team: Team
    sessions: Sessions
    retriever: RetrievalPort | None
    settlements: Settlements | None = None
    payments: Payments | None = None

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    async def audit(
        self, merchant_id: str, actor: str, action: str, target: str | None, ip: str | None
    ) -> None:
        """Sensitive actions leave a trace: who, what, on what, from where (never secrets)."""
        now = time.time()
        await self.repos.audit.append(
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


def found(doc: Document | None, what: str) -> Document:
    """This merchant's record, or 404 — never 403, so other tenants' ids are not revealed
    (the repositories answer None for another merchant's id, as for a missing one)."""
    if doc is None:
        raise ProblemError(404, "Not found", f"no such {what}")
    return doc


class KeyDirectory:
    """Resolves API keys created through the admin API (hashed at rest, revocable)."""

    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    async def resolve(self, key_hash: str) -> Caller | None:
        doc = await self._repos.api_keys.by_hash(key_hash)
        if doc is None or doc.get("revoked_at"):
            return None
        return Caller(str(doc["merchant_id"]), role=str(doc["role"]), key_id=str(doc["_id"]))


API = web.AppKey("kaleem_api", Api)


@functools.lru_cache(maxsize=8)
def _trusted(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _is_trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


MAX_FORWARDED_HOPS = 16


def client_ip(request: web.Request) -> str:
    """Who is calling, for per-IP limits and the audit log.

    Behind nginx the TCP peer is nginx, so one bucket would hold every client: when the peer is
    a trusted proxy, the client is the right-most ``X-Forwarded-For`` hop that is not trusted
    (hops to its left are whatever the client wrote, so they are never believed). A peer that
    is not trusted is the client, whatever headers it sends.
    """
    peer = request.remote or "unknown"
    networks = _trusted(request.app[API].settings.trusted_proxies)
    if not networks or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
        if not _is_trusted(hop, networks):
            return hop if _is_address(hop) else peer
    return hops[0] if hops and _is_address(hops[0]) else peer


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True
