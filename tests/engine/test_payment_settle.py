"""A verified webhook whose effects fail part-way (the outbox's Redis restarting) is applied
again under the database retry policy, and every effect still happens once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from engine.adapters.payments import PaymentClient
from engine.adapters.secrets import SecretBox
from engine.domain.messages import OutboundReply, conversation_key
from engine.services.commerce import Commerce
from engine.services.payments import Payments
from engine.services.repositories import Repositories
from tests.fakes.fake_moyasar import FakeMoyasar


class RestartingOutbox:
    """The outbox while its Redis restarts: the first ``down`` writes fail to connect."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.entries: list[OutboundReply] = []

    async def enqueue(self, reply: OutboundReply) -> None:
        if self.down:
            self.down -= 1
            raise ConnectionError("redis restarting")
        self.entries.append(reply)


class Channels:
    async def channel_kind(self, merchant_id: str, channel_id: str) -> str | None:
        return "telegram"


class Log:
    def __init__(self, repos: Repositories) -> None:
        self.repos = repos

    async def record_message(self, merchant_id: str, doc: dict[str, Any]) -> None:
        await self.repos.messages.record(merchant_id, doc)
        await self.repos.conversations.touch(merchant_id, doc)


class Live:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool:
        self.events.append(kind)
        return True


async def _chat_order(repos: Repositories, customer: str) -> tuple[dict[str, Any], Log]:
    """An order placed in a chat conversation of ``customer`` (and that chat's message log)."""
    await repos.products.create(
        {"_id": "m1:A", "merchant_id": "m1", "sku": "A", "title": "Mug", "price": 20.0}
    )
    key = conversation_key("m1", "ch_0123456789abcdef", customer)
    log = Log(repos)
    await log.record_message(
        "m1", {"_id": f"in:{customer}", "conversation_key": key, "direction": "in"}
    )
    order = await Commerce(repos).create_order(
        "m1",
        {"name": "Sara", "phone": "0551234567", "city": "Jeddah"},
        [{"sku": "A"}],
        source="chat",
        conversation_key=key,
    )
    return order, log


@pytest.fixture
async def moyasar() -> AsyncIterator[FakeMoyasar]:
    fake = FakeMoyasar()
    await fake.start()
    yield fake
    await fake.stop()


async def test_settle_retries_with_backoff_and_applies_once(
    sqlite_repos: Repositories, moyasar: FakeMoyasar
) -> None:
    repos = sqlite_repos
    order, log = await _chat_order(repos, "4242")
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    outbox, live = RestartingOutbox(down=2), Live()
    payments = Payments(
        repos,
        PaymentClient(allow_private=True),
        SecretBox(Fernet.generate_key().decode()),
        outbox,
        log,
        live,
        Channels(),
        base_url="https://kaleem.example",
        sleep=sleep,
        draw=lambda: 1.0,
    )
    creds = {"secret_key": moyasar.secret_key, "webhook_secret": moyasar.webhook_secret}
    await payments.configure("m1", "moyasar", creds, moyasar.base_url)
    payment = await payments.for_order("m1", str(order["_id"]))
    body = moyasar.event(str(payment["provider_ref"]))
    outcome, event = await payments.receive("moyasar", "m1", {}, body)
    assert outcome == "recorded" and event is not None

    assert await payments.settle(event) is True
    await payments.close()
    assert slept == [0.5, 1.0]  # two failed attempts, full-jitter caps of the database policy
    assert [r.customer_id for r in outbox.entries] == ["4242"]
    assert (await repos.orders.get("m1", str(order["_id"])) or {})["status"] == "confirmed"
    page = await repos.ledger.between("m1", 0, 1e12, limit=10, after=None)
    assert len(page.items) == 1
    assert live.events.count("payment.paid") == 1
    assert await repos.payment_events.unapplied(limit=10) == []


async def test_the_periodic_sweep_leaves_a_fresh_event_to_its_webhook_and_applies_an_old_one(
    sqlite_repos: Repositories, moyasar: FakeMoyasar
) -> None:
    repos = sqlite_repos
    order, log = await _chat_order(repos, "4343")
    now = [1_000.0]
    outbox, live = RestartingOutbox(down=0), Live()
    payments = Payments(
        repos,
        PaymentClient(allow_private=True),
        SecretBox(Fernet.generate_key().decode()),
        outbox,
        log,
        live,
        Channels(),
        base_url="https://kaleem.example",
        clock=lambda: now[0],
    )
    creds = {"secret_key": moyasar.secret_key, "webhook_secret": moyasar.webhook_secret}
    await payments.configure("m1", "moyasar", creds, moyasar.base_url)
    payment = await payments.for_order("m1", str(order["_id"]))
    # Recorded by a webhook handler that has not applied it yet (or died doing so).
    outcome, _ = await payments.receive("moyasar", "m1", {}, moyasar.event(payment["provider_ref"]))
    assert outcome == "recorded"

    now[0] += 10
    assert await payments.sweep(older_than_s=30) == 0  # still its handler's
    assert (await repos.orders.get("m1", str(order["_id"])) or {})["status"] == "new"
    now[0] += 30
    assert await payments.sweep(older_than_s=30) == 1
    assert await payments.sweep(older_than_s=30) == 0
    await payments.close()
    assert (await repos.orders.get("m1", str(order["_id"])) or {})["status"] == "confirmed"
    assert [r.customer_id for r in outbox.entries] == ["4343"]
    assert live.events.count("payment.paid") == 1
