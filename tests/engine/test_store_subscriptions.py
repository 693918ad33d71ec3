"""Webhook subscriptions as a use case: the real SQLite repositories, the real egress HTTP
adapter and the fake platforms on loopback holding subscriptions in their wire formats."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.fernet import Fernet

from connectors.stores import registry
from connectors.stores.base import same_target
from engine.adapters.integrations import IntegrationVaultRecords
from engine.adapters.secrets import SecretBox
from engine.adapters.store_http import EgressStoreHttp
from engine.domain.integrations import webhook_url
from engine.services.repositories import Repositories
from engine.services.store_sync import StoreSync, SyncBounds
from observability.metrics import REGISTRY
from tests.channels.harness import start_gateway
from tests.engine.test_store_sync import Nudges, Platform, _platform
from tests.fakes.fake_shopify import FakeShopify

M = "m_hooks"
OURS = "https://kaleem.example"


@pytest.fixture
async def http() -> AsyncIterator[EgressStoreHttp]:
    client = EgressStoreHttp(allow_private=True)
    yield client
    await client.close()


def _sync(repos: Repositories, vault: IntegrationVaultRecords, http: EgressStoreHttp) -> StoreSync:
    return StoreSync(
        repos,
        vault,
        http,
        Nudges(),
        accounts_bases={"salla": ""},
        clients={},
        bounds=SyncBounds(interval_s=900.0),
        webhook_base=OURS,
    )


def _url_of(p: Platform, sub: dict[str, Any]) -> str:
    return str(sub.get("url") or sub.get("target_url") or sub.get("address"))


def _topic_of(sub: dict[str, Any]) -> str:
    return str(sub.get("event") or sub.get("topic"))


def _ours(p: Platform, integration_id: str) -> list[dict[str, Any]]:
    """The fake's subscriptions that deliver to this integration (any event query)."""
    url = webhook_url(OURS, p.kind, integration_id)
    return [s for s in p.fake.subscriptions if same_target(_url_of(p, s), url, query=False)]


@pytest.mark.parametrize("kind", ["salla", "zid", "shopify"])
async def test_a_pass_subscribes_every_topic_once_and_a_second_attempt_adds_nothing(
    kind: str, sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform(kind)
    p.fake.products = [p.make(n, 10.0) for n in range(3)]
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http)
        integration = await vault.create(M, kind, base, p.credentials)
        before = await vault.get_owned(M, integration.id)
        assert before is not None
        assert before["webhooks"] == {"status": "pending", "topics": 0, "last_error": None}

        result = await sync.sync(integration.id)
        assert (result.outcome, result.products) == ("ok", 3)
        topics = registry.KINDS[kind].webhook_topics
        held = _ours(p, integration.id)
        assert sorted(_topic_of(s) for s in held) == sorted(topics)
        url = webhook_url(OURS, kind, integration.id)
        if kind == "zid":
            # The event rides in the target URL, and the Basic credentials as its user info.
            update = next(s for s in held if s["event"] == "product.update")
            assert update["target_url"] == (
                f"https://kaleem:zid-hook-password@kaleem.example/webhooks/zid/"
                f"{integration.id}?event=product.update"
            )
        else:
            assert {_url_of(p, s) for s in held} == {url}
        view = await vault.get_owned(M, integration.id)
        assert view is not None
        subscribed = {"status": "subscribed", "topics": len(topics), "last_error": None}
        assert view["webhooks"] == subscribed

        # A retry (a lost answer, a second pass): the platform's list says it is all there.
        fresh = await vault.get(integration.id)
        assert fresh is not None
        assert await sync.webhooks.ensure(fresh) == "subscribed"
        assert len(_ours(p, integration.id)) == len(topics)
        # And a subscribed integration's next pass does not ask again.
        calls = len(p.fake.calls)
        assert (await sync.sync(integration.id)).outcome == "ok"
        assert not [c for c in p.fake.calls[calls:] if "webhooks" in c.path]
    finally:
        await p.fake.stop()


async def test_salla_answers_the_same_url_and_event_with_the_held_subscription(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    """A subscribe sent again without reading the list first (a subscription made by another
    pass meanwhile) updates the one Salla holds: no duplicate."""
    p = _platform("salla")
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http)
        integration = await vault.create(M, "salla", base, p.credentials)
        assert await sync.webhooks.ensure(integration) == "subscribed"
        spec = registry.KINDS["salla"]
        url = webhook_url(OURS, "salla", integration.id)
        request = spec.subscribe_request(base, p.credentials, "product.updated", url)
        assert spec.subscribed(await http.send(request))
        assert len(p.fake.subscriptions) == len(spec.webhook_topics)
        # The Token strategy rides along: deliveries carry the secret our verifier checks.
        [sub] = p.fake.subscribed("product.updated")
        assert sub["headers"]["X-Salla-Security-Strategy"] == "Token"
        assert spec.verify(p.credentials, sub["headers"], b"{}")
    finally:
        await p.fake.stop()


@pytest.mark.parametrize("kind", ["salla", "zid", "shopify"])
async def test_a_failed_subscription_is_recorded_does_not_fail_the_sync_and_is_retried(
    kind: str, sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform(kind)
    p.fake.products = [p.make(n, 10.0) for n in range(2)]
    p.fake.subscription_failure = 503
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http)
        integration = await vault.create(M, kind, base, p.credentials)
        failed_before = REGISTRY.get_sample_value(
            "kaleem_store_webhook_subscriptions_total", {"kind": kind, "outcome": "failed"}
        )

        result = await sync.sync(integration.id)
        assert (result.outcome, result.products) == ("ok", 2)  # the catalogue still synced
        view = await vault.get_owned(M, integration.id)
        assert view is not None and view["status"] == "synced"
        assert view["webhooks"] == {"status": "failed", "topics": 0, "last_error": "http_5xx"}
        assert p.fake.subscriptions == []
        failed = REGISTRY.get_sample_value(
            "kaleem_store_webhook_subscriptions_total", {"kind": kind, "outcome": "failed"}
        )
        assert failed == (failed_before or 0) + 1

        # Not before the interval: the sweep leaves it alone.
        assert await sync.sweep() == 0
        # The next periodic pass (the interval has passed) tries again and succeeds.
        p.fake.subscription_failure = 0
        await sqlite_repos.integrations.update(
            M, integration.id, {"attempted_at": time.time() - 3600, "synced_at": time.time() - 3600}
        )
        assert await sync.sweep() == 1
        view = await vault.get_owned(M, integration.id)
        assert view is not None and view["webhooks"]["status"] == "subscribed"
        assert view["webhooks"]["last_error"] is None
        assert len(_ours(p, integration.id)) == len(registry.KINDS[kind].webhook_topics)
    finally:
        await p.fake.stop()


async def test_a_revoked_token_and_an_unreachable_platform_have_fixed_reasons(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform("shopify")
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http)
        revoked = await vault.create(M, "shopify", base, {**p.credentials, "access_token": "old"})
        assert await sync.webhooks.ensure(revoked) == "failed"
        view = await vault.get_owned(M, revoked.id)
        assert view is not None and view["webhooks"]["last_error"] == "unauthorized"
        assert "Invalid API key" not in str(view)
    finally:
        await p.fake.stop()
    gone = await vault.create(M, "shopify", base, p.credentials)  # nothing listens there now
    assert await sync.webhooks.ensure(gone) == "failed"
    view = await vault.get_owned(M, gone.id)
    assert view is not None and view["webhooks"]["last_error"] == "unreachable"


@pytest.mark.parametrize("kind", ["salla", "zid", "shopify"])
async def test_unsubscribing_removes_only_this_integrations_subscriptions(
    kind: str, sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform(kind)
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = _sync(sqlite_repos, vault, http)
        mine = await vault.create(M, kind, base, p.credentials)
        other = await vault.create(M, kind, base, p.credentials)  # a second store connection
        assert await sync.webhooks.ensure(mine) == "subscribed"
        assert await sync.webhooks.ensure(other) == "subscribed"
        topics = len(registry.KINDS[kind].webhook_topics)
        assert len(p.fake.subscriptions) == 2 * topics

        assert await sync.unsubscribe(mine)
        assert _ours(p, mine.id) == []
        assert len(_ours(p, other.id)) == topics

        # A platform refusing the removal does not raise: the disconnect goes on.
        p.fake.subscription_failure = 500
        assert not await sync.unsubscribe(other)
        assert len(_ours(p, other.id)) == topics
    finally:
        await p.fake.stop()


async def test_without_a_base_url_nothing_is_subscribed(
    sqlite_repos: Repositories, http: EgressStoreHttp
) -> None:
    p = _platform("zid")
    base = await p.fake.start()
    try:
        vault = IntegrationVaultRecords(sqlite_repos, SecretBox(Fernet.generate_key().decode()))
        sync = StoreSync(
            sqlite_repos, vault, http, Nudges(), accounts_bases={}, clients={}, webhook_base=""
        )
        integration = await vault.create(M, "zid", base, p.credentials)
        assert (await sync.sync(integration.id)).outcome == "ok"
        assert p.fake.subscriptions == [] and not await sync.unsubscribe(integration)
    finally:
        await p.fake.stop()


# -- the disconnect route ------------------------------------------------------------------------
async def test_disconnect_unsubscribes_first_and_goes_on_when_the_platform_refuses(
    tmp_path: Path,
) -> None:
    """``DELETE /api/v1/integrations/{id}`` on a gateway of its own (no Ray): our subscriptions
    go before the credentials; a platform refusing that does not stop the disconnect; another
    merchant's DELETE is 404 and touches nothing at the platform."""
    shop = FakeShopify()
    base = await shop.start()
    gw = await start_gateway(tmp_path)
    try:
        async with aiohttp.ClientSession() as client:

            async def connect(key: str) -> dict[str, Any]:
                creds = {
                    "shop": "demo.myshopify.com",
                    "access_token": shop.access_token,
                    "client_secret": "shh",
                }
                async with client.post(
                    f"{gw.base_url}/api/v1/integrations",
                    json={"kind": "shopify", "credentials": creds, "api_base": base},
                    headers={"Authorization": f"Bearer {key}"},
                ) as r:
                    assert r.status == 201, await r.text()
                    created: dict[str, Any] = await r.json()
                # What the first pass would have made (the indexer does not run here).
                for topic in ("products/update", "orders/updated"):
                    shop.subscriptions.append(
                        {
                            "id": len(shop.subscriptions) + 1,
                            "topic": topic,
                            "address": created["webhook_url"],
                            "format": "json",
                        }
                    )
                return created

            async def delete(key: str, integration_id: str) -> int:
                async with client.delete(
                    f"{gw.base_url}/api/v1/integrations/{integration_id}",
                    headers={"Authorization": f"Bearer {key}"},
                ) as r:
                    return r.status

            _, key = await gw.records.create_merchant("Hooks", "en")
            _, stranger = await gw.records.create_merchant("Stranger", "en")
            foreign = {"id": 999, "topic": "products/update", "address": "https://else.example/h"}
            shop.subscriptions.append(foreign)
            first = await connect(key)

            calls = len(shop.calls)
            assert await delete(stranger, first["id"]) == 404
            assert len(shop.calls) == calls  # nothing asked of the platform

            assert await delete(key, first["id"]) == 204
            assert [s["address"] for s in shop.subscriptions] == [foreign["address"]]

            second = await connect(key)
            shop.subscription_failure = 500
            assert await delete(key, second["id"]) == 204  # the platform refused: still gone
            async with client.get(
                f"{gw.base_url}/api/v1/integrations/{second['id']}",
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                assert r.status == 404
            stored = await gw.records.repos.integrations.get(second["id"])
            assert stored is not None and stored["secrets_enc"] == {}
    finally:
        await gw.close()
        await shop.stop()
