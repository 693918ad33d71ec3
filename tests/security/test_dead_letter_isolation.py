"""One merchant's dead letters cannot evict another's.

Every merchant's undeliverable replies used to share one stream capped at ~100,000 entries, so
a tenant whose channel fails everything (on purpose or not) trimmed every other tenant's dead
letters away before anyone could read or replay them; well before that, a merchant's listing
(which scanned at most 20 x ``limit`` of the newest entries for its own) came back empty behind
a few thousand of another's. These tests use a real gateway
(``tests/channels/harness.py``) and a real Redis, and write dead letters the way the delivery
worker does (``Outbox.dead_letter``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from engine.adapters.redis import keys
from engine.adapters.redis.queues import DEAD_LETTERS_PER_MERCHANT, Outbox
from engine.domain.messages import OutboundReply
from tests.channels.harness import OPERATOR, Gateway, gateway_fixture
from tests.messages import bot_reply

FLOOD = 3 * DEAD_LETTERS_PER_MERCHANT
DL = "/api/v1/outbox/dead-letters"


gw = gateway_fixture("dlq-gw")


def _reply(merchant_id: str, customer: str) -> OutboundReply:
    return bot_reply(f"{merchant_id}:ch_{merchant_id}:{customer}", "never arrived")


async def _get(http: aiohttp.ClientSession, url: str, token: str, **headers: str) -> Any:
    async with http.get(url, headers={"Authorization": f"Bearer {token}", **headers}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_a_flood_of_dead_letters_does_not_evict_another_merchants(gw: Gateway) -> None:
    outbox = Outbox(gw.redis)
    a, a_key = await gw.records.create_merchant("Flooding shop", "en")
    b, b_key = await gw.records.create_merchant("Quiet shop", "en")
    a = str((await gw.records.merchant_by_api_key(a_key) or {})["_id"])
    b = str((await gw.records.merchant_by_api_key(b_key) or {})["_id"])
    b_replies = [_reply(b, f"b-{n}") for n in range(3)]
    for r in b_replies:
        await outbox.dead_letter(r, "chat not found", 1)
    flood = [_reply(a, f"a-{n % 50}") for n in range(FLOOD)]
    for start in range(0, FLOOD, 64):
        await asyncio.gather(
            *(outbox.dead_letter(r, "gave up: network", 8) for r in flood[start : start + 64])
        )

    async with aiohttp.ClientSession() as http:
        mine = await _get(http, f"{gw.base_url}{DL}", b_key)
        assert sorted(d["outbox_id"] for d in mine["dead_letters"]) == sorted(
            r.outbox_id for r in b_replies
        )
        theirs = await _get(http, f"{gw.base_url}{DL}?limit=500", a_key)
        assert len(theirs["dead_letters"]) == 500
        assert {d["merchant_id"] for d in theirs["dead_letters"]} == {a}
        as_operator = await _get(http, f"{gw.base_url}{DL}", OPERATOR, **{"X-Kaleem-Merchant": b})
        assert len(as_operator["dead_letters"]) == 3

        # The flooder's own stream is what is capped.
        kept = int(await gw.redis.xlen(keys.dead_letters(a)))
        assert DEAD_LETTERS_PER_MERCHANT <= kept < FLOOD

        # B replays its own; A cannot replay B's.
        entry = mine["dead_letters"][0]["id"]
        async with http.post(
            f"{gw.base_url}{DL}/{entry}/replay", headers={"Authorization": f"Bearer {a_key}"}
        ) as r:
            assert r.status == 404
        async with http.post(
            f"{gw.base_url}{DL}/{entry}/replay", headers={"Authorization": f"Bearer {b_key}"}
        ) as r:
            assert r.status == 202, await r.text()
            replayed = (await r.json())["outbox_id"]
        after = await _get(http, f"{gw.base_url}{DL}", b_key)
        assert replayed not in {d["outbox_id"] for d in after["dead_letters"]}
        assert len(after["dead_letters"]) == 2
        outbox_entries = await gw.redis.xrevrange(keys.outbox_stream("telegram"), count=5)
        assert any(replayed.encode() in f[b"m"] for _, f in outbox_entries)

        # An operator without a merchant sees every merchant's, newest first, and finds B's.
        everyone = await _get(http, f"{gw.base_url}{DL}?limit=10", OPERATOR)
        assert {d["merchant_id"] for d in everyone["dead_letters"]} == {a}
        b_entry = after["dead_letters"][0]["id"]
        async with http.post(
            f"{gw.base_url}{DL}/{b_entry}/replay", headers={"Authorization": f"Bearer {OPERATOR}"}
        ) as r:
            assert r.status == 202, await r.text()
        assert len((await _get(http, f"{gw.base_url}{DL}", b_key))["dead_letters"]) == 1
