"""A host's cached merchant profile follows an edit at once: the change notice published on a
real (embedded) Redis makes every subscribed host read the record again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.conversation_host import CachedMerchants
from engine.adapters.records import Records
from engine.adapters.redis import invalidation, keys
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.redis.subscription import Subscription
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.services.repositories import Repositories


async def test_profile_edit_reaches_the_cache_without_waiting_for_the_ttl(
    tmp_path: Path, sqlite_repos: Repositories
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis_client(url)
    records = Records(sqlite_repos, SecretBox(load_or_create_key("", tmp_path)))
    merchant_id, _ = await records.create_merchant("Old name", "ar")
    hosts = [CachedMerchants(records, ttl_s=3600) for _ in range(2)]
    subscriptions = [Subscription(url, keys.merchant_changes(), h.on_notice) for h in hosts]
    try:
        for sub in subscriptions:
            await sub.start()
        for host in hosts:
            profile = await host.profile(merchant_id)
            assert profile is not None and profile.name == "Old name"
        await sqlite_repos.merchants.update_profile(merchant_id, {"name": "New name"})
        await invalidation.merchant_changed(client, merchant_id)
        names: list[str] = []
        for _ in range(100):  # delivery is asynchronous; bounded wait, no timing assertion
            names = [str(getattr(await h.profile(merchant_id), "name", "")) for h in hosts]
            if names == ["New name", "New name"]:
                break
            await asyncio.sleep(0.02)
        assert names == ["New name", "New name"]
    finally:
        for sub in subscriptions:
            await sub.stop()
        await client.aclose()
        server.stop()


async def test_a_notice_redis_cannot_take_does_not_fail_the_edit(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis_client(server.start())
    server.stop()
    try:
        await invalidation.merchant_changed(client, "m_1")  # logged, not raised
    finally:
        await client.aclose()
