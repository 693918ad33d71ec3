"""A request that runs twice writes once: retried chat turns and replayed order keys.

Found before the fix: a checkout order was created before the turn committed, so a turn that
ran again (a host crash between the order and the checkpoint, a redelivered message) wrote a
second order and a second lead; and an order request whose engine died after claiming its
``Idempotency-Key`` left the key "in progress" for 24 h.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.adapters.redis.idempotency import IdempotencyStore
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.domain.conversation import ConversationState, MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage
from engine.domain.retrieval import RetrievalResult
from engine.services.commerce import Commerce
from engine.services.repositories import Repositories

MERCHANT = MerchantProfile("m1", "Shop", "en")


class NoResults:
    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        return RetrievalResult([], [])


@pytest.fixture
async def repos(sqlite_repos: Repositories) -> Repositories:
    await sqlite_repos.products.create(
        {"_id": "m1:A", "merchant_id": "m1", "sku": "A", "title": "Mug", "price": 20.0}
    )
    return sqlite_repos


def _checkout_state() -> ConversationState:
    state = ConversationState("m1", "webchat", "buyer")
    state.cart = [{"sku": "A", "title": "Mug", "qty": 2, "price": 20.0}]
    state.checkout = {"stage": "city", "name": "Sara", "phone": "0551234567"}
    return state


async def test_a_checkout_turn_that_runs_again_places_one_order(repos: Repositories) -> None:
    service = TurnService(NoResults(), commerce=Commerce(repos))  # type: ignore[arg-type]
    message = InboundMessage("m1", "webchat", "webchat", "buyer", "msg-1", "Jeddah", 0.0)
    first = await service.run_turn(_checkout_state(), [message], MERCHANT, 1.0)
    # The host died before the checkpoint: the same message runs on the old state again.
    again = await service.run_turn(_checkout_state(), [message], MERCHANT, 2.0)
    assert first.state.orders == again.state.orders and len(first.state.orders) == 1
    orders = await repos.orders.for_phone("m1", "0551234567", limit=10)
    assert [o["_id"] for o in orders] == first.state.orders
    assert len(await repos.leads.for_order("m1", first.state.orders[0])) == 1
    assert first.reply is not None and again.reply is not None
    assert first.state.orders[0] in again.reply.text  # the customer is told the same order


async def test_a_key_whose_request_died_is_taken_over(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path / "redis")
    redis = redis_client(embedded.start())
    try:
        store = IdempotencyStore(redis, lease_s=3600)
        assert (await store.claim("m1", "orders", "k", "fp")).outcome == "fresh"
        assert (await store.claim("m1", "orders", "k", "fp")).outcome == "running"
        assert (await store.claim("m1", "orders", "k", "other")).outcome == "mismatch"
        expired = IdempotencyStore(redis, lease_s=0)  # the first request's lease has run out
        assert (await expired.claim("m1", "orders", "k", "fp")).outcome == "fresh"
        await store.finish("m1", "orders", "k", "fp", 201, {"id": "ord_x"})
        replay = await store.claim("m1", "orders", "k", "fp")
        assert (replay.outcome, replay.status, replay.body) == ("replay", 201, {"id": "ord_x"})
    finally:
        await redis.aclose()
        embedded.stop()


async def test_an_order_key_run_twice_names_one_order(repos: Repositories) -> None:
    commerce = Commerce(repos)
    customer = {"name": "Sara", "phone": "0551234567", "city": "Jeddah"}
    a = await commerce.create_order("m1", customer, [{"sku": "A"}], source="api", request_id="r1")
    b = await commerce.create_order("m1", customer, [{"sku": "A"}], source="api", request_id="r1")
    assert a["_id"] == b["_id"]
    assert len(await repos.orders.for_phone("m1", "0551234567", limit=10)) == 1
