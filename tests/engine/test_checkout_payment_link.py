"""The chat checkout sends a payment link when the merchant takes online payment: created
once per order at the provider (a turn that runs again gets the same link, no second
invoice), and the order is still placed when the provider fails or none is connected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from engine.adapters.payments import PaymentClient
from engine.adapters.secrets import SecretBox
from engine.domain.conversation import ConversationState, MerchantProfile
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage, OutboundReply
from engine.domain.retrieval import RetrievalResult
from engine.services.commerce import Commerce
from engine.services.payments import Payments
from engine.services.repositories import Repositories
from tests.fakes.fake_moyasar import FakeMoyasar

MERCHANT = MerchantProfile("m1", "Shop", "en")


class NoResults:
    async def retrieve(self, merchant_id: str, query: str, **_: Any) -> RetrievalResult:
        return RetrievalResult([], [])


class Unused:
    """Outbox, message log, live events and channels: a checkout link touches none of them."""

    async def enqueue(self, reply: OutboundReply) -> None:
        raise AssertionError("no customer message at checkout")

    async def record_message(self, merchant_id: str, doc: dict[str, Any]) -> None:
        raise AssertionError("no message record at checkout")

    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool:
        return True

    async def channel(self, channel_id: str) -> Any:
        return None


@pytest.fixture
async def moyasar() -> AsyncIterator[FakeMoyasar]:
    fake = FakeMoyasar()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def payments(sqlite_repos: Repositories) -> AsyncIterator[Payments]:
    await sqlite_repos.products.create(
        {"_id": "m1:A", "merchant_id": "m1", "sku": "A", "title": "Mug", "price": 20.5}
    )
    unused = Unused()
    service = Payments(
        sqlite_repos,
        PaymentClient(allow_private=True),
        SecretBox(Fernet.generate_key().decode()),
        unused,
        unused,
        unused,
        unused,
        base_url="https://kaleem.example",
    )
    yield service
    await service.close()


def _checkout_state() -> ConversationState:
    state = ConversationState("m1", "webchat", "buyer")
    state.cart = [{"sku": "A", "title": "Mug", "qty": 2, "price": 20.5}]
    state.checkout = {"stage": "city", "name": "Sara", "phone": "0551234567"}
    return state


def _service(repos: Repositories, payments: Payments) -> TurnService:
    return TurnService(NoResults(), commerce=Commerce(repos), payments=payments)


async def test_the_checkout_reply_carries_one_link_per_order(
    sqlite_repos: Repositories, payments: Payments, moyasar: FakeMoyasar
) -> None:
    creds = {"secret_key": moyasar.secret_key, "webhook_secret": moyasar.webhook_secret}
    await payments.configure("m1", "moyasar", creds, moyasar.base_url)
    service = _service(sqlite_repos, payments)
    message = InboundMessage("m1", "webchat", "webchat", "buyer", "msg-1", "Jeddah", 0.0)
    first = await service.run_turn(_checkout_state(), [message], MERCHANT, 1.0)
    again = await service.run_turn(_checkout_state(), [message], MERCHANT, 2.0)  # replayed turn
    assert first.reply is not None and again.reply is not None
    (invoice,) = moyasar.invoices.values()
    assert invoice.amount == 4100  # 2 × 20.50 SAR, in halalas, from the catalogue
    url = f"https://checkout.moyasar.com/invoices/{invoice.id}?lang=en"
    assert f"Pay here to confirm it: {url}" in first.reply.text
    assert first.reply.text == again.reply.text
    assert first.state.orders[0] in first.reply.text


async def test_without_a_provider_or_when_it_fails_the_order_is_still_placed(
    sqlite_repos: Repositories, payments: Payments, moyasar: FakeMoyasar
) -> None:
    service = _service(sqlite_repos, payments)
    message = InboundMessage("m1", "webchat", "webchat", "buyer", "msg-2", "Jeddah", 0.0)
    plain = await service.run_turn(_checkout_state(), [message], MERCHANT, 1.0)
    assert plain.reply is not None and "your order is placed" in plain.reply.text
    assert "Pay here" not in plain.reply.text and moyasar.invoices == {}

    creds = {"secret_key": moyasar.secret_key, "webhook_secret": moyasar.webhook_secret}
    await payments.configure("m1", "moyasar", creds, moyasar.base_url)
    moyasar.fail_next(500)
    message = InboundMessage("m1", "webchat", "webchat", "buyer", "msg-3", "Jeddah", 0.0)
    failed = await service.run_turn(_checkout_state(), [message], MERCHANT, 2.0)
    assert failed.reply is not None and "your order is placed" in failed.reply.text
    assert len(failed.state.orders) == 1
