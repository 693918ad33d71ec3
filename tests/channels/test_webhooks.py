"""Channel admin and Meta/Telegram webhooks against the real gateway app + real Redis."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.meta import sign
from engine.adapters.redis import keys
from tests.channels.harness import OPERATOR, Gateway, gateway_fixture
from tests.fakes.fake_meta import messaging_text, messaging_webhook, wa_text, whatsapp_webhook
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram, make_update

APP_SECRET = "app-secret-123456"
VERIFY = "verify-me-please"
WA_TOKEN = "EAAG-whatsapp-token-abcdef"
PAGE_TOKEN = "EAAG-page-token-abcdef"


gw = gateway_fixture("chan-gw")


@pytest.fixture(scope="module")
async def merchant(gw: Gateway) -> tuple[str, str]:
    return await gw.records.create_merchant("Chan Shop", "en")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _create(
    http: aiohttp.ClientSession, gw: Gateway, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with http.post(f"{gw.base_url}/api/v1/channels", json=body, headers=_auth(key)) as r:
        assert r.status == 201, await r.text()
        data: dict[str, Any] = await r.json()
        return data


@pytest.fixture(scope="module")
async def wa(gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str]) -> str:
    body = {
        "kind": "whatsapp",
        "phone_number_id": "1098765",
        "access_token": WA_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
        "api_base": "http://127.0.0.1:9",
    }
    return str((await _create(http, gw, merchant[1], body))["id"])


@pytest.fixture(scope="module")
async def ms(gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str]) -> str:
    body = {
        "kind": "messenger",
        "page_id": "555000",
        "page_access_token": PAGE_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY,
    }
    return str((await _create(http, gw, merchant[1], body))["id"])


async def _post(
    http: aiohttp.ClientSession,
    gw: Gateway,
    path: str,
    payload: dict[str, Any] | bytes,
    secret: str | None = APP_SECRET,
) -> tuple[int, str]:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    async with http.post(f"{gw.base_url}{path}", data=body, headers=headers) as r:
        return r.status, await r.text()


async def _inbox(gw: Gateway) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in range(gw.settings.inbox_partitions):
        for _, fields in await gw.redis.xrange(keys.inbox_stream(p)):
            out.append(orjson.loads(fields[b"m"]))
    return out


async def _metric(http: aiohttp.ClientSession, gw: Gateway, needle: str) -> float:
    async with http.get(f"{gw.base_url}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(needle):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_channels_are_listed_masked_and_secrets_encrypted_at_rest(
    gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str], wa: str, ms: str
) -> None:
    async with http.get(f"{gw.base_url}/api/v1/channels", headers=_auth(merchant[1])) as r:
        assert r.status == 200
        text = await r.text()
        listed = {c["id"]: c for c in orjson.loads(text)["channels"]}
    assert WA_TOKEN not in text and APP_SECRET not in text and PAGE_TOKEN not in text
    assert listed[wa]["kind"] == "whatsapp" and listed[wa]["phone_number_id"] == "1098765"
    assert set(listed[wa]["secrets"]) == {"access_token", "app_secret", "verify_token"}
    raw = await gw.records.repos.channels.get(wa)
    assert raw is not None and WA_TOKEN not in orjson.dumps(raw).decode()
    # Another merchant sees none of them.
    _, other = await gw.records.create_merchant("Other", "en")
    async with http.get(f"{gw.base_url}/api/v1/channels", headers=_auth(other)) as r:
        assert (await r.json())["channels"] == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "fax"}, "kind"),
        ({"kind": "whatsapp", "app_secret": "a", "verify_token": "v"}, "phone_number_id"),
        (
            {
                "kind": "whatsapp",
                "phone_number_id": "12ab",
                "access_token": "t",
                "app_secret": "a",
                "verify_token": "v",
            },
            "phone_number_id",
        ),
        (
            {
                "kind": "messenger",
                "page_id": "1",
                "page_access_token": "t",
                "app_secret": "a",
                "verify_token": "v",
                "api_base": "ftp://x",
            },
            "api_base",
        ),
    ],
)
async def test_bad_channel_input_is_422(
    gw: Gateway,
    http: aiohttp.ClientSession,
    merchant: tuple[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    async with http.post(
        f"{gw.base_url}/api/v1/channels", json=body, headers=_auth(merchant[1])
    ) as r:
        assert r.status == 422
        assert (await r.json())["errors"][0]["field"] == field


async def test_meta_verification_handshake(
    gw: Gateway, http: aiohttp.ClientSession, wa: str
) -> None:
    url = f"{gw.base_url}/webhooks/whatsapp/{wa}"
    ok = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    async with http.get(url, params=ok) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        assert await r.text() == "1158201444"
    async with http.get(url, params={**ok, "hub.verify_token": "nope"}) as r:
        assert r.status == 403
    async with http.get(url, params={**ok, "hub.mode": "unsubscribe"}) as r:
        assert r.status == 403
    async with http.get(f"{gw.base_url}/webhooks/messenger/{wa}", params=ok) as r:
        assert r.status == 404  # a WhatsApp channel is not a Messenger channel


async def test_batched_whatsapp_post_appends_every_message_once(
    gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str], wa: str
) -> None:
    payload = whatsapp_webhook(
        "1098765",
        messages=[
            wa_text("966500000001", "wamid.A1", "hello"),
            wa_text("966500000002", "wamid.A2", "do you have shoes?"),
            {
                "from": "966500000003",
                "id": "wamid.A3",
                "type": "image",
                "image": {"caption": "this bag in black?", "id": "img1"},
            },
        ],
        statuses=[{"id": "wamid.OUT1", "status": "read", "timestamp": "1700000000"}],
        contacts=[("966500000001", "Sara")],
    )
    before = await _inbox(gw)
    assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", payload)) == (200, "EVENT_RECEIVED")
    assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", payload))[0] == 200  # redelivery
    new = [m for m in await _inbox(gw) if m not in before]
    assert sorted(m["message_id"] for m in new) == ["wamid.A1", "wamid.A2", "wamid.A3"]
    by_id = {m["message_id"]: m for m in new}
    assert by_id["wamid.A1"]["customer_name"] == "Sara"
    assert by_id["wamid.A3"]["text"] == "this bag in black?"
    assert all(m["merchant_id"] == merchant[0] and m["channel_kind"] == "whatsapp" for m in new)
    status = await gw.records.delivery(merchant[0], wa, "wamid.OUT1")
    assert status is not None and status["status"] == "read"


async def test_messenger_batch_postbacks_quick_replies_and_events(
    gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str], ms: str
) -> None:
    items = [
        messaging_text("psid-1", "555000", "mid.M1", "hi"),
        {
            "sender": {"id": "psid-2"},
            "recipient": {"id": "555000"},
            "timestamp": 1700000000000,
            "postback": {"mid": "mid.P1", "title": "Choose", "payload": "product:Red mug"},
        },
        {
            "sender": {"id": "psid-3"},
            "recipient": {"id": "555000"},
            "timestamp": 1700000000000,
            "message": {
                "mid": "mid.Q1",
                "text": "Red",
                "quick_reply": {"payload": "product:Red mug"},
            },
        },
        {  # our own message echoed back: recorded, never answered
            "sender": {"id": "555000"},
            "recipient": {"id": "psid-1"},
            "timestamp": 1700000000000,
            "message": {"mid": "mid.OUR1", "is_echo": True, "text": "hello"},
        },
        {
            "sender": {"id": "psid-1"},
            "recipient": {"id": "555000"},
            "timestamp": 1700000000000,
            "delivery": {"mids": ["mid.OUR1"], "watermark": 1700000000000},
        },
    ]
    before = await _inbox(gw)
    status, _ = await _post(
        http, gw, f"/webhooks/messenger/{ms}", messaging_webhook("messenger", "555000", items)
    )
    assert status == 200
    new = {m["message_id"]: m for m in await _inbox(gw) if m not in before}
    assert set(new) == {"mid.M1", "mid.P1", "mid.Q1"}
    assert new["mid.P1"]["text"] == "Red mug" and new["mid.Q1"]["text"] == "Red mug"
    record = await gw.records.delivery(merchant[0], ms, "mid.OUR1")
    assert record is not None and record["echoed"] is True and record["status"] == "delivered"


async def test_bad_signature_unknown_channel_malformed_and_oversized_are_4xx_and_store_nothing(
    gw: Gateway, http: aiohttp.ClientSession, wa: str
) -> None:
    payload = whatsapp_webhook("1098765", messages=[wa_text("966511", "wamid.BAD1", "x")])
    before = await _inbox(gw)
    bad_sig = await _metric(
        http, gw, 'kaleem_webhooks_total{channel="whatsapp",outcome="bad_signature"}'
    )
    assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", payload, secret="wrong"))[0] == 401
    assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", payload, secret=None))[0] == 401
    assert (
        await _metric(http, gw, 'kaleem_webhooks_total{channel="whatsapp",outcome="bad_signature"}')
        == bad_sig + 2
    )
    assert (await _post(http, gw, "/webhooks/whatsapp/ch_0000000000000000", payload))[0] == 404
    assert (await _post(http, gw, f"/webhooks/fax/{wa}", payload))[0] == 404
    for body in (
        b"{nope",
        b"[1]",
        b'{"object": "page", "entry": []}',
        _NO_FROM,
    ):
        assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", body))[0] == 400, body
    big = b'{"object": "whatsapp_business_account", "entry": [], "x": "' + b"a" * 300_000 + b'"}'
    assert (await _post(http, gw, f"/webhooks/whatsapp/{wa}", big))[0] == 413
    assert await _inbox(gw) == before


async def test_telegram_connect_sets_webhook_callback_is_answered_and_delete_disconnects(
    gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str]
) -> None:
    async with FakeTelegram() as fake:
        body = {
            "kind": "telegram",
            "bot_token": DEFAULT_TOKEN,
            "secret_token": "tg-secret_1",
            "api_base": fake.base_url,
        }
        created = await _create(http, gw, merchant[1], body)
        assert created["webhook_registered"] is True
        hook = fake.webhooks[DEFAULT_TOKEN]
        assert hook["url"] == created["webhook_url"]
        assert hook["secret_token"] == "tg-secret_1"
        assert "callback_query" in hook["allowed_updates"]
        update = {
            "update_id": 777,
            "callback_query": {
                "id": "cbq-1",
                "from": {"id": 42, "is_bot": False, "first_name": "Sara"},
                "message": {"message_id": 5, "chat": {"id": 42, "type": "private"}},
                "data": "Red mug",
            },
        }
        async with http.post(
            created["webhook_url"],
            data=orjson.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret_1"},
        ) as r:
            assert r.status == 200
            assert await r.json() == {"method": "answerCallbackQuery", "callback_query_id": "cbq-1"}
        async with http.delete(
            f"{gw.base_url}/api/v1/channels/{created['id']}", headers=_auth(merchant[1])
        ) as r:
            assert r.status == 204
        assert DEFAULT_TOKEN not in fake.webhooks
        assert [c.method for c in fake.calls] == ["setWebhook", "deleteWebhook"]
        async with http.post(
            created["webhook_url"],
            data=orjson.dumps(make_update(778, 42, "hi")),
            headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret_1"},
        ) as r:
            assert r.status == 404  # disconnected at once on this gateway
        async with http.delete(
            f"{gw.base_url}/api/v1/channels/{created['id']}", headers=_auth(merchant[1])
        ) as r:
            assert r.status == 404


async def test_dead_letters_are_listed_and_replayed_per_merchant(
    gw: Gateway, http: aiohttp.ClientSession, merchant: tuple[str, str], wa: str
) -> None:
    from engine.adapters.redis.queues import Outbox
    from engine.domain.messages import OutboundReply

    reply = OutboundReply(
        outbox_id="ob-dlq-1",
        merchant_id=merchant[0],
        channel_id=wa,
        channel_kind="whatsapp",
        customer_id="9665",
        text="hi",
        intent="greeting",
        handoff=False,
        in_reply_to=("wamid.z",),
        received_at=1.0,
    )
    await Outbox(gw.redis).dead_letter(reply, "invalid token (whatsapp 401 code 190)", 1)
    async with http.get(
        f"{gw.base_url}/api/v1/outbox/dead-letters", headers=_auth(merchant[1])
    ) as r:
        items = (await r.json())["dead_letters"]
    [item] = [i for i in items if i["outbox_id"] == "ob-dlq-1"]
    assert "190" in item["reason"]
    _, other = await gw.records.create_merchant("Nosy", "en")
    async with http.post(
        f"{gw.base_url}/api/v1/outbox/dead-letters/{item['id']}/replay", headers=_auth(other)
    ) as r:
        assert r.status == 404  # not theirs
    async with http.get(f"{gw.base_url}/api/v1/outbox/dead-letters", headers=_auth(OPERATOR)) as r:
        assert any(i["id"] == item["id"] for i in (await r.json())["dead_letters"])
    length = await gw.redis.xlen(keys.outbox_stream("whatsapp"))
    async with http.post(
        f"{gw.base_url}/api/v1/outbox/dead-letters/{item['id']}/replay", headers=_auth(merchant[1])
    ) as r:
        assert r.status == 202
    assert await gw.redis.xlen(keys.outbox_stream("whatsapp")) == length + 1
    async with http.post(
        f"{gw.base_url}/api/v1/outbox/dead-letters/{item['id']}/replay", headers=_auth(merchant[1])
    ) as r:
        assert r.status == 404  # replayed once, gone from the dead letters


_NO_FROM = orjson.dumps(
    {
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{"field": "messages", "value": {"messages": [{"id": "x"}]}}]}],
    }
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "object",
        "entry",
        "changes",
        "value",
        "messages",
        "statuses",
        "messaging",
        "id",
        "from",
        "type",
        "text",
        "sender",
        "message",
        "mid",
        "postback",
        "field",
        "metadata",
    ]
)
_shaped = st.recursive(
    st.none()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "whatsapp_business_account",
            "page",
            "instagram",
            "messages",
            "text",
            "interactive",
            "image",
            "location",
            "reaction",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(_json, _shaped), kind=st.sampled_from(["whatsapp", "messenger"]))
async def test_fuzzed_webhook_payloads_never_get_a_5xx(
    gw: Gateway, http: aiohttp.ClientSession, wa: str, ms: str, payload: Any, kind: str
) -> None:
    channel = wa if kind == "whatsapp" else ms
    body = json.dumps(payload).encode()  # stdlib: also emits integers orjson cannot read
    status, text = await _post(http, gw, f"/webhooks/{kind}/{channel}", body)
    assert status < 500, text
