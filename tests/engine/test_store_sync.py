"""Store sync as a use case: the real SQLite repositories, the real egress HTTP adapter and
fake platforms on loopback speaking their wire formats (no Ray, no gateway)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet

from connectors.stores import registry
from engine.adapters.integrations import IntegrationVaultRecords
from engine.adapters.secrets import SecretBox
from engine.adapters.store_http import EgressStoreHttp
from engine.domain.integrations import FAILED, SYNCED, platform_order_id
from engine.services.indexing import INDEX_REV, INDEX_STATE, PENDING
from engine.services.repositories import Repositories
from engine.services.store_sync import StoreSync, SyncBounds
from tests.fakes.fake_salla import FakeSalla, salla_product
from tests.fakes.fake_shopify import FakeShopify, shopify_product
from tests.fakes.fake_store import FakeStore
from tests.fakes.fake_zid import FakeZid, zid_product

M = "m_store"
N = 1000


class Nudges:
    def __init__(self) -> None:
        self.merchants: list[str] = []

    def reconcile(self, merchant_id: str) -> None:
        self.merchants.append(merchant_id)


@dataclass
class Platform:
    kind: str
    fake: FakeStore
    make: Callable[[int, float], dict[str, Any]]
    credentials: dict[str, str]
    page_path: str


def _platform(kind: str) -> Platform:
    if kind == "salla":
        salla = FakeSalla()
        return Platform(
            kind,
            salla,
            salla_product,
            {
                "access_token": salla.access_token,
                "refresh_token": salla.refresh_token,
                "webhook_secret": "salla-hook-secret",
            },
            "/admin/v2/products",
        )
    if kind == "zid":
        zid = FakeZid()
        return Platform(
            kind,
            zid,
            zid_product,
            {
                "authorization": zid.authorization,
                "access_token": zid.access_token,
                "webhook_user": "kaleem",
                "webhook_password": "zid-hook-password",
            },
            "/v1/products/",
        )
    shop = FakeShopify()
    return Platform(
        kind,
        shop,
        shopify_product,
        {"shop": "demo.myshopify.com", "access_token": shop.access_token, "client_secret": "shh"},
        "/products.json",
    )


@pytest.fixture
async def http() -> AsyncIterator[EgressStoreHttp]:
    client = EgressStoreHttp(allow_private=True)
    yield client
    await client.close()


def _sync(
    repos: Repositories,
    vault: IntegrationVaultRecords,
    http: EgressStoreHttp,
    nudges: Nudges,
    accounts: str = "",
) -> StoreSync:
    return StoreSync(
        repos,
        vault,
        http,
        nudges,
        accounts_bases={"salla": accounts},
        clients={"salla": {"client_id": "client-id", "client_secret": "client-secret"}},
        bounds=SyncBounds(interval_s=900.0, refresh_margin_s=600.0),
    )


def _signed(
    p: Platform, body: bytes, topic: str, event_id: str, *, key: str | None = None
) -> dict[str, str]:
    """The platform's credentials for ``body``; ``key`` forges them with another secret."""
    if p.kind == "salla":
        secret = key or p.credentials["webhook_secret"]
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Salla-Signature": sig, "X-Salla-Security-Strategy": "Signature"}
    if p.kind == "zid":
        basic = base64.b64encode(f"kaleem:{key or 'zid-hook-password'}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    secret = key or p.credentials["client_secret"]
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": event_id,
    }


def _product_event(p: Platform, item: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    if p.kind == "salla":
        body = json.dumps({"event": "product.updated", "merchant": 1, "data": item}).encode()
        return body, {}
    if p.kind == "zid":
        return json.dumps(item).encode(), {"event": "product.update"}
    return json.dumps(item).encode(), {}


@pytest.mark.parametrize("kind", ["salla", "zid", "shopify"])
async def test_a_catalogue_syncs_across_pages_through_a_429_and_webhooks_apply_once(
    kind: str, sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform(kind)
    p.fake.products = [p.make(n, 10.0 + n) for n in range(N)]
    p.fake.throttle_requests = {3}  # a 429 in the middle of the walk
    p.fake.retry_after = "0.2"
    base = await p.fake.start()
    try:
        repos = sqlite_repos
        vault = IntegrationVaultRecords(repos, SecretBox(Fernet.generate_key().decode()))
        nudges = Nudges()
        sync = _sync(repos, vault, http, nudges, accounts=base)
        integration = await vault.create(M, kind, base, p.credentials)

        result = await sync.sync(integration.id)
        assert (result.outcome, result.products) == ("ok", N)
        statuses = [c.status for c in p.fake.page_calls(p.page_path)]
        assert statuses.count(429) == 1 and statuses[-1] == 200
        assert await repos.products.count(M) == N
        spec = registry.KINDS[kind]
        row = p.make(17, 0.0)
        sku = spec.parse_page(
            __import__("connectors.stores.base", fromlist=["StoreResponse"]).StoreResponse(
                200, {}, json.dumps(_page_doc(kind, [row])).encode()
            )
        ).products[0]["sku"]
        doc = await repos.products.by_sku(M, sku)
        assert doc is not None and doc["price"] == 27.0 and doc[INDEX_STATE] == PENDING
        assert doc["source"] == kind and nudges.merchants
        view = await vault.get_owned(M, integration.id)
        assert view is not None and view["status"] == SYNCED
        assert view["sync"] == {"products": N, "orders": 0, "last_error": None}
        assert p.credentials["access_token"] not in json.dumps(view)

        # A second pass writes nothing that did not change; an unlisted product goes.
        rev = doc[INDEX_REV]
        p.fake.products = p.fake.products[:-1]
        again = await sync.sync(integration.id)
        assert (again.outcome, again.products, again.removed) == ("ok", N - 1, 1)
        same = await repos.products.by_sku(M, sku)
        assert same is not None and same[INDEX_REV] == rev
        assert await repos.products.count(M) == N - 1
        [stone] = await repos.tombstones.batch(M, limit=10)
        assert stone["collection"] == "products"

        # A product-updated webhook changes the price; its redelivery is a no-op.
        fresh = await vault.get(integration.id)
        assert fresh is not None
        body, query = _product_event(p, p.make(17, 99.5))
        headers = _signed(p, body, "products/update", "wh-17")
        assert spec.verify(fresh.credentials, headers, body)
        event = spec.parse_event(headers, query, body)
        assert await sync.apply_event(fresh, event) == "accepted"
        changed = await repos.products.by_sku(M, sku)
        assert changed is not None and changed["price"] == 99.5
        assert changed[INDEX_STATE] == PENDING and changed[INDEX_REV] != rev
        assert await sync.apply_event(fresh, spec.parse_event(headers, query, body)) == "duplicate"
        assert await repos.products.count(M) == N - 1
        # Credentials made with another secret are refused before anything is read.
        forged = _signed(p, body, "products/update", "wh-18", key="guessed")
        assert not spec.verify(fresh.credentials, forged, body)
    finally:
        await p.fake.stop()


def _page_doc(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    if kind == "salla":
        return {"data": items, "pagination": {"currentPage": 1, "totalPages": 1}}
    if kind == "zid":
        return {"count": len(items), "next": None, "results": items}
    return {"products": items}


async def test_a_platform_order_lands_with_its_status_and_updates_in_place(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
    sync = _sync(sqlite_repos, vault, http, Nudges())
    integration = await vault.create(
        M, "salla", "https://api.salla.dev", {"access_token": "a", "webhook_secret": "s"}
    )
    spec = registry.KINDS["salla"]

    def order_event(slug: str, name: str) -> bytes:
        data = {
            "id": 8812,
            "reference_id": 55123,
            "status": {"slug": slug, "name": name},
            "customer": {"mobile": 555000111, "mobile_code": "+966"},
            "amounts": {"total": {"amount": 240, "currency": "SAR"}},
        }
        return json.dumps({"event": "order.status.updated", "data": data}).encode()

    await sync.apply_event(
        integration, spec.parse_event({}, {}, order_event("in_progress", "قيد التنفيذ"))
    )
    await sync.apply_event(
        integration, spec.parse_event({}, {}, order_event("delivering", "جاري التوصيل"))
    )
    order = await sqlite_repos.orders.get(M, platform_order_id(integration.id, "8812"))
    assert order is not None
    assert (order["status"], order["platform_status"], order["source"]) == (
        "shipped",
        "جاري التوصيل",
        "salla",
    )
    assert (order["total"], order["currency"], order["phone"]) == (240.0, "SAR", "+966555000111")
    assert order["platform_order_number"] == "55123"
    view = await vault.get_owned(M, integration.id)
    assert view is not None and view["sync"]["orders"] == 1  # one order, two events


async def test_uninstalling_the_app_disconnects_and_stops_the_sync(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
    sync = _sync(sqlite_repos, vault, http, Nudges())
    integration = await vault.create(
        M,
        "shopify",
        "https://demo.myshopify.com",
        {"access_token": "a", "client_secret": "s", "shop": "demo.myshopify.com"},
    )
    event = registry.KINDS["shopify"].parse_event(
        {"X-Shopify-Topic": "app/uninstalled", "X-Shopify-Webhook-Id": "u1"}, {}, b"{}"
    )
    assert await sync.apply_event(integration, event) == "accepted"
    gone = await vault.get(integration.id)
    assert gone is not None and gone.status == "disconnected" and not gone.credentials
    assert (await sync.sync(integration.id)).outcome == "disconnected"
    assert await vault.for_merchant(M) == []


async def test_salla_tokens_refresh_once_under_the_lock_and_a_spent_token_is_never_reused(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    salla = FakeSalla()
    salla.products = [salla_product(n) for n in range(3)]
    base = await salla.start()
    try:
        box = SecretBox(Fernet.generate_key().decode())
        vault = IntegrationVaultRecords(sqlite_repos, box)
        integration = await vault.create(
            M,
            "salla",
            base,
            {
                "access_token": salla.access_token,
                "refresh_token": salla.refresh_token,
                "webhook_secret": "s",
            },
        )
        one = _sync(sqlite_repos, vault, http, Nudges(), accounts=base)
        other = _sync(sqlite_repos, vault, http, Nudges(), accounts=base)  # another process
        # Three callers in this process and one in another, all wanting a fresh token at once.
        results = await asyncio.gather(
            one.fresh(integration, force=True),
            one.fresh(integration, force=True),
            one.fresh(integration, force=True),
            other.fresh(integration, force=True),
        )
        assert salla.refreshes == 1
        assert {r.credentials["access_token"] for r in results} == {salla.access_token}
        stored = await vault.get(integration.id)
        assert stored is not None and stored.credentials["refresh_token"] == salla.refresh_token
        assert stored.expires_at is not None and stored.token_rev != integration.token_rev
        # The platform revokes the access token: the sync refreshes once and carries on.
        salla.access_token = "revoked-by-platform"
        salla.refresh_token = stored.credentials["refresh_token"]
        result = await one.sync(integration.id)
        assert (result.outcome, result.products) == ("ok", 3)
        assert salla.refreshes == 2
        # A refresh the platform refuses ends the run with a fixed reason, nothing else.
        salla.access_token = "revoked-again"
        salla.spent.add(salla.refresh_token)
        failed = await one.sync(integration.id)
        assert (failed.outcome, failed.reason) == ("failed", "token_refresh_refused")
        view = await vault.get_owned(M, integration.id)
        assert view is not None and view["status"] == FAILED
        assert view["sync"]["last_error"] == "token_refresh_refused"
    finally:
        await salla.stop()


async def test_the_periodic_sweep_runs_due_integrations_and_reports_the_lag(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    from observability.metrics import REGISTRY

    zid = FakeZid()
    zid.products = [zid_product(n) for n in range(5)]
    base = await zid.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http, Nudges())
        creds = {
            "authorization": zid.authorization,
            "access_token": zid.access_token,
            "webhook_user": "u",
            "webhook_password": "p",
        }
        fresh = await vault.create(M, "zid", base, creds)
        stale = await vault.create("m_other", "zid", base, creds)
        await sqlite_repos.integrations.update(M, fresh.id, {"synced_at": time.time() - 60})
        await sqlite_repos.integrations.update(
            "m_other", stale.id, {"synced_at": time.time() - 3600}
        )
        assert await sync.sweep() == 1  # only the one past the interval
        lag = REGISTRY.get_sample_value("kaleem_store_sync_lag_seconds", {"kind": "zid"})
        assert lag is not None and lag >= 3600 - 5
        assert await sqlite_repos.products.count("m_other") == 5
        assert await sqlite_repos.products.count(M) == 0
        assert await sync.sweep() == 0  # both are fresh now
        # A pass that failed is not retried before the interval either.
        zid.access_token = "revoked"
        await sqlite_repos.integrations.update(
            M, fresh.id, {"attempted_at": None, "synced_at": None}
        )
        assert await sync.sweep() == 1
        failed = await vault.get_owned(M, fresh.id)
        assert failed is not None and failed["sync"]["last_error"] == "unauthorized"
        assert await sync.sweep() == 0
        done = REGISTRY.get_sample_value(
            "kaleem_store_sync_total", {"kind": "zid", "outcome": "ok"}
        )
        assert done is not None and done >= 1
    finally:
        await zid.stop()


async def test_a_product_deleted_webhook_removes_the_product_and_its_vectors_once(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
    sync = _sync(sqlite_repos, vault, http, Nudges())
    integration = await vault.create(
        M, "salla", "https://api.salla.dev", {"access_token": "a", "webhook_secret": "s"}
    )
    spec = registry.KINDS["salla"]
    created = json.dumps({"event": "product.created", "data": salla_product(5, 30.0)}).encode()
    assert await sync.apply_event(integration, spec.parse_event({}, {}, created)) == "accepted"
    assert await sqlite_repos.products.by_sku(M, "salla-100005") is not None
    deleted = json.dumps({"event": "product.deleted", "data": {"id": 100005}}).encode()
    assert await sync.apply_event(integration, spec.parse_event({}, {}, deleted)) == "accepted"
    assert await sqlite_repos.products.by_sku(M, "salla-100005") is None
    [stone] = await sqlite_repos.tombstones.batch(M, limit=10)
    assert "salla-100005" in stone["vector_ids"]
    again = spec.parse_event({}, {}, deleted)
    assert await sync.apply_event(integration, again) == "duplicate"
    assert len(await sqlite_repos.tombstones.batch(M, limit=10)) == 1
    # Another integration's event cannot delete this one's product (nor a merchant's own).
    await sqlite_repos.products.create(
        {"_id": f"{M}:salla-100006", "merchant_id": M, "sku": "salla-100006", "title": "Own"}
    )
    other = json.dumps({"event": "product.deleted", "data": {"id": 100006}}).encode()
    await sync.apply_event(integration, spec.parse_event({}, {}, other))
    assert await sqlite_repos.products.by_sku(M, "salla-100006") is not None


def test_store_settings_are_read_once_from_the_environment() -> None:
    from engine.config import Settings

    default = Settings.from_env({})
    assert (default.store_sync_interval_s, default.salla_accounts_base) == (
        900.0,
        "https://accounts.salla.sa",
    )
    s = Settings.from_env(
        {
            "KALEEM_STORE_SYNC_INTERVAL_S": "120",
            "KALEEM_STORE_REFRESH_MARGIN_S": "30",
            "KALEEM_SALLA_CLIENT_ID": "cid",
            "KALEEM_SALLA_CLIENT_SECRET": "cs",
            "KALEEM_SALLA_ACCOUNTS_BASE": "https://accounts.example/",
        }
    )
    assert (s.store_sync_interval_s, s.store_refresh_margin_s) == (120.0, 30.0)
    assert (s.salla_client_id, s.salla_client_secret) == ("cid", "cs")
    assert s.salla_accounts_base == "https://accounts.example"


async def test_a_webhook_during_a_page_in_flight_is_not_undone_by_that_page(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    salla = FakeSalla()
    salla.products = [salla_product(n, 10.0) for n in range(120)]
    base = await salla.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http, Nudges(), accounts=base)
        creds = {"access_token": salla.access_token, "webhook_secret": "s"}
        integration = await vault.create(M, "salla", base, creds)
        spec = registry.KINDS["salla"]

        async def repriced_meanwhile(request_number: int) -> None:
            if request_number == 2:  # page 2 (products 60..119) is being served
                body = json.dumps(
                    {"event": "product.updated", "data": salla_product(100, 55.0)}
                ).encode()
                await sync.apply_event(integration, spec.parse_event({}, {}, body))

        salla.before_page = repriced_meanwhile
        assert (await sync.sync(integration.id)).outcome == "ok"
        doc = await sqlite_repos.products.by_sku(M, "salla-100100")
        assert doc is not None and doc["price"] == 55.0  # the page's older 10.0 did not win
    finally:
        await salla.stop()


async def test_the_store_http_adapter_reads_an_answer_sent_in_chunks_whole(
    http: EgressStoreHttp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform page arriving in several chunks (keep-alive, a slow link) is read whole, and
    an answer over the bound is refused rather than cut."""
    from aiohttp import web

    from connectors.stores.base import StoreRequest
    from engine.adapters import store_http
    from engine.services.ports import StoreUnreachable
    from tests.gateways import listen

    doc = {"products": [{"id": n, "title": "x" * 200} for n in range(2000)]}
    payload = json.dumps(doc).encode()

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for start in range(0, len(payload), 7000):
            await resp.write(payload[start : start + 7000])
            await asyncio.sleep(0.001)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/page", chunked)
    runner, base = await listen(app, "127.0.0.1")
    try:
        answer = await http.send(StoreRequest("GET", f"{base}/page"))
        assert answer.status == 200 and json.loads(answer.body) == doc
        monkeypatch.setattr(store_http, "MAX_PAGE_BYTES", len(payload) // 2)
        with pytest.raises(StoreUnreachable):
            await http.send(StoreRequest("GET", f"{base}/page"))
    finally:
        await runner.cleanup()
