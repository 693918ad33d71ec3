"""End to end on the real engine (Ray, Serve, models, delivery actors): a signed Meta webhook
in, the bot's reply out at the fake Graph API, per channel kind."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from connectors.meta import sign
from tests.conftest import Engine, Store
from tests.fakes.fake_meta import (
    FakeMeta,
    messaging_text,
    messaging_webhook,
    wa_text,
    whatsapp_webhook,
)

pytestmark = pytest.mark.integration

SECRET = "e2e-app-secret"
_n = itertools.count(1)


@pytest.fixture(scope="module")
async def fake_meta() -> AsyncIterator[FakeMeta]:
    async with FakeMeta() as fake:
        yield fake


async def _connect(engine: Engine, store: Store, fake: FakeMeta, kind: str) -> tuple[str, str]:
    account = str(7_000_000 + next(_n))
    token = f"EAAG-{kind}-{account}"
    fake.add_account(kind, account, token)
    body: dict[str, Any] = {
        "kind": kind,
        "app_secret": SECRET,
        "verify_token": "vt",
        "api_base": fake.base_url,
    }
    if kind == "whatsapp":
        body |= {"phone_number_id": account, "access_token": token}
    else:
        body |= {"page_id": account, "page_access_token": token}
    async with engine.session.post(
        f"{engine.base_url}/api/v1/channels",
        json=body,
        headers={"Authorization": f"Bearer {store.api_key}"},
    ) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["id"]), account


async def _post(engine: Engine, kind: str, channel_id: str, payload: dict[str, Any]) -> int:
    body = orjson.dumps(payload)
    async with engine.session.post(
        f"{engine.base_url}/webhooks/{kind}/{channel_id}",
        data=body,
        headers={"X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"},
    ) as r:
        return r.status


async def test_whatsapp_batch_of_three_customers_gets_three_replies_once(
    engine: Engine, demo_store: Store, fake_meta: FakeMeta
) -> None:
    channel_id, number = await _connect(engine, demo_store, fake_meta, "whatsapp")
    customers = [f"9665{next(_n):08d}" for _ in range(3)]
    payload = whatsapp_webhook(
        number,
        messages=[
            wa_text(c, f"wamid.E2E{c}", text)
            for c, text in zip(
                customers,
                ["I need running shoes", "كم رسوم الشحن؟", "do you have a leather bag?"],
                strict=True,
            )
        ],
    )
    assert await _post(engine, "whatsapp", channel_id, payload) == 200
    assert await _post(engine, "whatsapp", channel_id, payload) == 200  # Meta redelivers
    for c in customers:
        sent = await fake_meta.wait_for_messages(c, 1, timeout=90)
        assert sent[0]["to"] == c
    shoes = fake_meta.sent_to(customers[0])
    assert any("Running" in orjson.dumps(m).decode() for m in shoes)
    # A later message to the first customer is the second reply there: no duplicate turn.
    again = whatsapp_webhook(number, messages=[wa_text(customers[0], "wamid.E2Enext", "thanks")])
    assert await _post(engine, "whatsapp", channel_id, again) == 200
    before = len(shoes)
    after = await fake_meta.wait_for_messages(customers[0], before + 1, timeout=90)
    assert len(after) == before + 1


@pytest.mark.parametrize("kind", ["messenger", "instagram"])
async def test_messenger_and_instagram_signed_webhook_gets_a_reply(
    engine: Engine, demo_store: Store, fake_meta: FakeMeta, kind: str
) -> None:
    channel_id, account = await _connect(engine, demo_store, fake_meta, kind)
    user = f"{kind}-user-{next(_n)}"
    payload = messaging_webhook(
        kind, account, [messaging_text(user, account, f"mid.{user}", "I need running shoes")]
    )
    assert await _post(engine, kind, channel_id, payload) == 200
    sent = await fake_meta.wait_for_messages(user, 1, timeout=90)
    assert sent[0]["recipient"] == {"id": user}
    assert sent[0]["messaging_type"] == "RESPONSE"
