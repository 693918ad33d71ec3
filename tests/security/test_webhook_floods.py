"""Anonymous webhook floods: bounded per address, and they cannot evict real channels.

``/webhooks/*`` had no limit, and every random channel id became a cached "not found" that
pushed real channels out of the gateway's channel cache (each then cost a store lookup again).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp
import orjson

from engine.adapters.providers import CachedChannels
from engine.domain.channels import Channel
from tests.channels.harness import start_gateway


class CountingSource:
    def __init__(self, known: Channel) -> None:
        self.known = known
        self.lookups: list[str] = []

    async def channel(self, channel_id: str) -> Channel | None:
        self.lookups.append(channel_id)
        return self.known if channel_id == self.known.id else None


async def test_random_channel_ids_do_not_evict_real_channels() -> None:
    real = Channel("ch_0123456789abcdef", "m1", "telegram", "https://api.telegram.org")
    source = CountingSource(real)
    cache = CachedChannels(source, ttl_s=3600, max_items=100)
    assert await cache.channel(real.id) == real
    for _ in range(5_000):
        assert await cache.channel(f"ch_{secrets.token_hex(8)}") is None
    for junk in ("../../etc", "x" * 500, "ch_zz"):
        assert await cache.channel(junk) is None  # not even looked up
    assert await cache.channel(real.id) == real
    assert source.lookups.count(real.id) == 1  # still cached
    assert not any(not x.startswith("ch_") or len(x) != 19 for x in source.lookups)


async def test_failed_webhooks_are_bounded_per_address(tmp_path: Path) -> None:
    gw = await start_gateway(
        tmp_path, trusted_proxies=("127.0.0.1/32",), webhook_failures_per_address=20
    )
    try:
        _, key = await gw.records.create_merchant("Shop", "en")
        channel_id = await gw.records.create_channel(
            (await gw.records.merchant_by_api_key(key) or {})["_id"],
            "telegram",
            "http://127.0.0.1:9",
            "1:token",
            "right-secret",
        )
        update = orjson.dumps(
            {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "text": "hi",
                    "chat": {"id": 5, "type": "private"},
                    "from": {"id": 5, "is_bot": False},
                },
            }
        )
        async with aiohttp.ClientSession() as http:

            async def post(address: str, channel: str, secret: str) -> int:
                async with http.post(
                    f"{gw.base_url}/webhooks/telegram/{channel}",
                    data=update,
                    headers={
                        "X-Forwarded-For": address,
                        "X-Telegram-Bot-Api-Secret-Token": secret,
                        "Content-Type": "application/json",
                    },
                ) as r:
                    await r.read()
                    return r.status

            attacker = [
                await post("198.51.100.66", f"ch_{secrets.token_hex(8)}", "x") for _ in range(25)
            ]
            assert attacker[0] == 404 and attacker[-1] == 429
            # ...even with a real channel: that address is done for this window.
            assert await post("198.51.100.66", channel_id, "right-secret") == 429
            # The platform, from its own address, is not affected.
            assert await post("149.154.167.1", channel_id, "right-secret") == 200
    finally:
        await gw.close()
