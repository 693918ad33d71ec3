"""Unit tests for the pure Telegram connector: parsing, rendering, splitting, outcomes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from connectors.base import Delivered, MalformedPayload, PermanentFailure, RetryLater
from connectors.telegram import (
    MAX_TEXT_LEN,
    SECRET_HEADER,
    build_answer_callback_query,
    build_delete_webhook,
    build_send_message,
    build_set_webhook,
    interpret_response,
    parse_update,
    render_text,
    split_text,
    update_id_of,
    verify_secret,
)
from engine.domain.messages import InboundMessage, OutboundReply, ProductCard
from tests.fakes.fake_telegram import make_update

API = "https://api.telegram.org"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _parse(update: Any) -> InboundMessage | None:
    return parse_update(orjson.dumps(update), merchant_id="m1", channel_id="c1", received_at=5.0)


def _reply(
    text: str = "Here you go",
    *,
    language: str = "en",
    products: tuple[ProductCard, ...] = (),
    customer_id: str = "42",
) -> OutboundReply:
    return OutboundReply(
        outbox_id="o1",
        merchant_id="m1",
        channel_id="c1",
        channel_kind="telegram",
        customer_id=customer_id,
        text=text,
        intent="product_search",
        handoff=False,
        in_reply_to=("1",),
        received_at=1.0,
        language=language,
        products=products,
    )


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


SHOES = ProductCard(sku="s1", title="Running shoes", price=249.5, currency="SAR", url="https://s/1")
BAG = ProductCard(sku="b1", title="حقيبة جلد", price=1200.0, currency="SAR", url="https://s/2")
NO_URL = ProductCard(sku="n1", title="Gift card", price=None, currency=None, url=None)


# ---------------------------------------------------------------------------- verify_secret


def test_secret_header_name() -> None:
    assert SECRET_HEADER == "X-Telegram-Bot-Api-Secret-Token"


@pytest.mark.parametrize(
    ("expected", "provided", "ok"),
    [
        ("s3cr3t_-Token", "s3cr3t_-Token", True),
        ("s3cr3t", "s3cr3x", False),
        ("s3cr3t", "s3cr3t-longer", False),  # wrong length
        ("s3cr3t", "s3c", False),
        ("s3cr3t", "", False),
        ("s3cr3t", None, False),
        ("", "", False),  # no configured secret never authenticates
        ("", None, False),
        ("s3cr3t", "سر", False),  # non-ASCII must not raise
    ],
)
def test_verify_secret(expected: str, provided: str | None, ok: bool) -> None:
    assert verify_secret(expected, provided) is ok


# ---------------------------------------------------------------------------- parse_update


def test_parse_text_message() -> None:
    msg = _parse(make_update(1001, 42, "عندكم أحذية رياضية؟"))
    assert msg == InboundMessage(
        merchant_id="m1",
        channel_id="c1",
        channel_kind="telegram",
        customer_id="42",
        message_id="1001",
        text="عندكم أحذية رياضية؟",
        received_at=5.0,
        customer_name="Sara",
    )
    assert msg.conversation_key == "m1:c1:42"


def test_parse_caption_and_username_fallback() -> None:
    update = make_update(7, 9, "")
    message = update["message"]
    del message["text"]
    message["caption"] = "how much is this?"
    message["photo"] = [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}]
    message["from"] = {"id": 9, "is_bot": False, "first_name": " ", "username": "sara_k"}
    msg = _parse(update)
    assert msg is not None
    assert msg.text == "how much is this?"
    assert msg.customer_name == "sara_k"


def test_parse_bounds_text_length() -> None:
    msg = _parse(make_update(1, 42, "x" * 10_000))
    assert msg is not None
    assert len(msg.text) == 4096


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b"[1, 2]", b'"text"', b"null", b"42"],
)
def test_parse_rejects_non_objects(body: bytes) -> None:
    with pytest.raises(MalformedPayload, match="telegram update"):
        parse_update(body, merchant_id="m", channel_id="c", received_at=0.0)


@pytest.mark.parametrize(
    "update",
    [
        {"message": {"message_id": 1, "chat": {"id": 1}, "text": "hi"}},
        {"update_id": "1", "message": {"message_id": 1, "chat": {"id": 1}, "text": "hi"}},
        {"update_id": True, "message": {"message_id": 1, "chat": {"id": 1}, "text": "hi"}},
        {"update_id": 1.5},
    ],
)
def test_parse_requires_integer_update_id(update: dict[str, Any]) -> None:
    with pytest.raises(MalformedPayload, match="update_id"):
        _parse(update)


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ("hello", "message is not an object"),
        ({"chat": {"id": 1}, "text": "hi"}, "message_id"),
        ({"message_id": 1, "text": "hi"}, "chat"),
        ({"message_id": 1, "chat": {"id": "1"}, "text": "hi"}, "chat"),
        ({"message_id": 1, "chat": [], "text": "hi"}, "chat"),
        ({"message_id": 1, "chat": {"id": 1}, "text": 5}, "text is not a string"),
        ({"message_id": 1, "chat": {"id": 1}, "caption": ["x"]}, "caption"),
        ({"message_id": 1, "chat": {"id": 1}, "from": "me", "text": "hi"}, "from"),
    ],
)
@pytest.mark.parametrize("key", ["message", "edited_message"])
def test_parse_rejects_bad_message_shapes(key: str, message: Any, match: str) -> None:
    with pytest.raises(MalformedPayload, match=match):
        _parse({"update_id": 3, key: message})


@pytest.mark.parametrize(
    "update",
    [
        # sticker: no text, no caption
        {
            "update_id": 2,
            "message": {"message_id": 1, "chat": {"id": 1}, "sticker": {"file_id": "x"}},
        },
        # from a bot: never answered (bot loops)
        {
            "update_id": 2,
            "message": {
                "message_id": 1,
                "chat": {"id": 1},
                "from": {"id": 5, "is_bot": True, "first_name": "B"},
                "text": "hi",
            },
        },
        # blank text
        {"update_id": 2, "message": {"message_id": 1, "chat": {"id": 1}, "text": "  \n "}},
        # edits are not new turns
        {"update_id": 2, "edited_message": {"message_id": 1, "chat": {"id": 1}, "text": "x"}},
        {
            "update_id": 2,
            "my_chat_member": {"chat": {"id": 1}, "from": {"id": 1}, "date": 0},
        },
        {"update_id": 2, "channel_post": {"message_id": 1, "chat": {"id": -100}, "text": "x"}},
        {"update_id": 2},
        # callback_query without data (game) or from a bot
        {"update_id": 2, "callback_query": {"id": "q", "from": {"id": 1}, "game_short_name": "g"}},
        {
            "update_id": 2,
            "callback_query": {"id": "q", "from": {"id": 1, "is_bot": True}, "data": "x"},
        },
    ],
)
def test_parse_ignores_updates_we_do_not_answer(update: dict[str, Any]) -> None:
    assert _parse(update) is None
    assert update_id_of(orjson.dumps(update)) == 2


def test_parse_callback_query_uses_chat_of_message() -> None:
    update = {
        "update_id": 55,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 111, "is_bot": False, "first_name": "Omar"},
            "message": {"message_id": 9, "chat": {"id": -200, "type": "group"}, "date": 1},
            "chat_instance": "ci",
            "data": "more like #2",
        },
    }
    msg = _parse(update)
    assert msg is not None
    assert (msg.customer_id, msg.message_id, msg.text) == ("-200", "55", "more like #2")
    assert msg.customer_name == "Omar"
    assert msg.trace == {"telegram_callback_query_id": "4382bfdwdsb323b2d9"}


def test_parse_callback_query_without_message_uses_user_id() -> None:
    update = {"update_id": 56, "callback_query": {"id": "q", "from": {"id": 111}, "data": "yes"}}
    msg = _parse(update)
    assert msg is not None
    assert msg.customer_id == "111"
    assert msg.customer_name is None


@pytest.mark.parametrize("query", ["x", {"id": "q", "data": "x"}, {"from": {"id": "1"}}])
def test_parse_rejects_bad_callback_query(query: Any) -> None:
    with pytest.raises(MalformedPayload, match="callback_query"):
        _parse({"update_id": 1, "callback_query": query})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (orjson.dumps(make_update(77, 1, "hi")), 77),
        (b'{"update_id": 0}', 0),
        (b"garbage", None),
        (b"[]", None),
        (b'{"update_id": "77"}', None),
        (b'{"update_id": false}', None),
    ],
)
def test_update_id_of(body: bytes, expected: int | None) -> None:
    assert update_id_of(body) == expected


# ---------------------------------------------------------------------------- output


def test_send_plain_text() -> None:
    [call] = build_send_message(API + "/", TOKEN, _reply("Hello!"))
    assert call.method == "POST"
    assert call.url == f"{API}/bot{TOKEN}/sendMessage"
    assert call.json == {"chat_id": 42, "text": "Hello!"}
    assert call.recipient == "42"


def test_send_to_username_chat_keeps_string() -> None:
    [call] = build_send_message(API, TOKEN, _reply("hi", customer_id="@shop_channel"))
    assert call.json["chat_id"] == "@shop_channel"


def test_send_renders_products_in_english() -> None:
    [call] = build_send_message(API, TOKEN, _reply("Found 3:", products=(SHOES, BAG, NO_URL)))
    assert call.json["text"] == (
        "Found 3:\n\n"
        "Products:\n"
        "1. Running shoes — 249.50 SAR\n"
        "https://s/1\n"
        "2. حقيبة جلد — 1,200 SAR\n"
        "https://s/2\n"
        "3. Gift card — price on request"
    )
    assert call.json["reply_markup"] == {
        "inline_keyboard": [
            [
                {"text": "Running shoes", "callback_data": "Running shoes"},
                {"text": "View: Running shoes", "url": "https://s/1"},
            ],
            [
                {"text": "حقيبة جلد", "callback_data": "حقيبة جلد"},
                {"text": "View: حقيبة جلد", "url": "https://s/2"},
            ],
            [{"text": "Gift card", "callback_data": "Gift card"}],
        ]
    }


def test_send_renders_products_in_arabic() -> None:
    reply = _reply("وجدت هذه المنتجات:", language="ar-SA", products=(BAG, NO_URL))
    [call] = build_send_message(API, TOKEN, reply)
    assert call.json["text"] == (
        "وجدت هذه المنتجات:\n\n"
        "المنتجات:\n"
        "1. حقيبة جلد — 1,200 SAR\n"
        "https://s/2\n"
        "2. Gift card — السعر عند الطلب"
    )
    assert call.json["reply_markup"]["inline_keyboard"] == [
        [
            {"text": "حقيبة جلد", "callback_data": "حقيبة جلد"},
            {"text": "عرض: حقيبة جلد", "url": "https://s/2"},
        ],
        [{"text": "Gift card", "callback_data": "Gift card"}],
    ]


def test_send_only_web_urls_become_buttons_and_labels_are_bounded() -> None:
    products = (
        ProductCard(sku="a", title="A" * 200, price=1.0, currency="USD", url="https://x/a"),
        ProductCard(sku="b", title="B", price=1.0, currency="USD", url="javascript:alert(1)"),
        ProductCard(sku="c", title="", price=1.0, currency="", url="ftp://x/c"),
    )
    [call] = build_send_message(API, TOKEN, _reply("", products=products))
    keyboard = call.json["reply_markup"]["inline_keyboard"]
    assert len(keyboard) == 3
    assert [b.get("url") for row in keyboard for b in row if "url" in b] == ["https://x/a"]
    assert len(keyboard[0][1]["text"]) == 64
    assert keyboard[0][1]["text"].endswith("…")
    assert len(keyboard[0][0]["callback_data"].encode()) <= 64
    assert "3. c — 1" in call.json["text"]  # untitled product falls back to its sku
    assert call.json["text"].startswith("Products:")


def test_send_without_usable_urls_still_offers_a_choice_button() -> None:
    [call] = build_send_message(API, TOKEN, _reply("x", products=(NO_URL,)))
    assert call.json["reply_markup"] == {
        "inline_keyboard": [[{"text": "Gift card", "callback_data": "Gift card"}]]
    }


def test_send_without_products_has_no_keyboard() -> None:
    [call] = build_send_message(API, TOKEN, _reply("x"))
    assert "reply_markup" not in call.json


def test_send_nothing_when_empty() -> None:
    assert build_send_message(API, TOKEN, _reply("  \n ")) == []


def test_send_splits_long_text_in_order_with_keyboard_on_last() -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 300 for i in range(6)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 2 * MAX_TEXT_LEN
    calls = build_send_message(API, TOKEN, _reply(text, products=(SHOES,)))
    assert len(calls) >= 3
    texts = [c.json["text"] for c in calls]
    assert all(0 < _utf16(t) <= MAX_TEXT_LEN for t in texts)
    assert " ".join(" ".join(texts).split()) == " ".join(
        render_text(_reply(text, products=(SHOES,))).split()
    )
    assert texts[0].startswith("Paragraph 0:")
    assert all(t.startswith("Paragraph") for t in texts[:-1])  # cut at paragraph breaks
    assert ["reply_markup" in c.json for c in calls] == [False] * (len(calls) - 1) + [True]
    assert {c.recipient for c in calls} == {"42"}


def test_split_exactly_at_limit_is_one_chunk() -> None:
    assert split_text("a" * MAX_TEXT_LEN) == ["a" * MAX_TEXT_LEN]
    assert split_text("a" * (MAX_TEXT_LEN + 1)) == ["a" * MAX_TEXT_LEN, "a"]


def test_split_prefers_spaces_and_counts_utf16() -> None:
    assert split_text("aaaa bbbb cccc", limit=10) == ["aaaa bbbb", "cccc"]
    emoji = "😀" * 3000  # 6000 UTF-16 units: must split although len() is 3000
    chunks = split_text(emoji)
    assert [len(c) for c in chunks] == [2048, 952]
    assert "".join(chunks) == emoji


def test_split_arabic_lines() -> None:
    line = "سعر الحذاء الرياضي مئتان وخمسون ريالا"
    text = "\n".join([line] * 300)
    chunks = split_text(text)
    assert all(_utf16(c) <= MAX_TEXT_LEN for c in chunks)
    assert all(c.split("\n")[-1] == line for c in chunks)  # whole lines only
    assert sum(c.count(line) for c in chunks) == 300


def test_split_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError):
        split_text("abc", limit=1)


@pytest.mark.parametrize("token", ["", "123:abc/../x", "123:abc def", "123:abc?x=1"])
def test_bad_token_is_rejected_without_echoing_it(token: str) -> None:
    with pytest.raises(ValueError) as info:
        build_send_message(API, token, _reply("hi"))
    if token:
        assert token not in str(info.value)


def test_set_and_delete_webhook() -> None:
    call = build_set_webhook(API, TOKEN, "https://hooks.example/tg/c1", "sec_RET-1")
    assert call.url == f"{API}/bot{TOKEN}/setWebhook"
    assert call.json == {
        "url": "https://hooks.example/tg/c1",
        "secret_token": "sec_RET-1",
        "allowed_updates": ["message", "edited_message", "callback_query"],
        "drop_pending_updates": False,
    }
    call = build_set_webhook(API, TOKEN, "https://h/x", "s", max_connections=40)
    assert call.json["max_connections"] == 40
    delete = build_delete_webhook(API, TOKEN, drop_pending_updates=True)
    assert delete.url == f"{API}/bot{TOKEN}/deleteWebhook"
    assert delete.json == {"drop_pending_updates": True}
    answer = build_answer_callback_query(API, TOKEN, "q1")
    assert answer.url.endswith("/answerCallbackQuery")
    assert answer.json == {"callback_query_id": "q1"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "https://h", "secret_token": ""}, "secret_token"),
        ({"url": "https://h", "secret_token": "has space"}, "secret_token"),
        ({"url": "https://h", "secret_token": "x" * 257}, "secret_token"),
        ({"url": "", "secret_token": "ok"}, "url"),
        ({"url": "https://h", "secret_token": "ok", "max_connections": 0}, "max_connections"),
    ],
)
def test_set_webhook_validates(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_set_webhook(API, TOKEN, **kwargs)


# ---------------------------------------------------------------------------- interpret_response


def _err(code: int, description: str, **parameters: Any) -> bytes:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body)


def test_interpret_delivered() -> None:
    body = orjson.dumps({"ok": True, "result": {"message_id": 314, "chat": {"id": 1}, "date": 0}})
    assert interpret_response(200, body) == Delivered("314")
    assert interpret_response(200, b'{"ok":true,"result":true}') == Delivered("")


def test_interpret_flood_control() -> None:
    outcome = interpret_response(429, _err(429, "Too Many Requests: retry after 7", retry_after=7))
    assert outcome == RetryLater(
        reason="telegram 429: Too Many Requests: retry after 7", after_s=7.0
    )
    assert interpret_response(429, _err(429, "Too Many Requests")).after_s is None  # type: ignore[union-attr]
    assert interpret_response(429, b"").after_s is None  # type: ignore[union-attr]
    bad = interpret_response(429, _err(429, "x", retry_after="soon"))
    assert isinstance(bad, RetryLater)
    assert bad.after_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_interpret_server_errors_retry(status: int) -> None:
    assert isinstance(interpret_response(status, b"<html>Bad Gateway</html>"), RetryLater)
    assert isinstance(interpret_response(status, _err(status, "Internal")), RetryLater)


def test_interpret_unparsable_retries() -> None:
    assert isinstance(interpret_response(200, b"<html>"), RetryLater)
    assert isinstance(interpret_response(200, b"[]"), RetryLater)
    assert isinstance(interpret_response(302, b""), RetryLater)


def test_interpret_ok_false_with_200_uses_error_code() -> None:
    outcome = interpret_response(200, _err(403, "Forbidden: bot was blocked by the user"))
    assert outcome == PermanentFailure(
        reason="telegram 403: Forbidden: bot was blocked by the user", unreachable=True
    )


@pytest.mark.parametrize(
    "description",
    ["Forbidden: bot was blocked by the user", "Forbidden: user is deactivated"],
)
def test_interpret_forbidden_is_unreachable(description: str) -> None:
    outcome = interpret_response(403, _err(403, description))
    assert isinstance(outcome, PermanentFailure)
    assert outcome.unreachable
    assert description in outcome.reason


def test_interpret_chat_not_found() -> None:
    outcome = interpret_response(400, _err(400, "Bad Request: chat not found"))
    assert isinstance(outcome, PermanentFailure)
    assert "chat not found" in outcome.reason


def test_interpret_group_migrated() -> None:
    body = _err(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1001234)
    outcome = interpret_response(400, body)
    assert isinstance(outcome, PermanentFailure)
    assert "-1001234" in outcome.reason


@pytest.mark.parametrize(("status", "description"), [(401, "Unauthorized"), (404, "Not Found")])
def test_interpret_invalid_token(status: int, description: str) -> None:
    outcome = interpret_response(status, _err(status, description))
    assert isinstance(outcome, PermanentFailure)
    assert "invalid bot token" in outcome.reason
    assert not outcome.unreachable
    html = interpret_response(status, b"<html>nope</html>")
    assert isinstance(html, PermanentFailure)
    assert "invalid bot token" in html.reason


def test_interpret_never_leaks_a_token() -> None:
    body = _err(400, f"Bad Request: can't call https://api.telegram.org/bot{TOKEN}/sendMessage")
    outcome = interpret_response(400, body)
    assert isinstance(outcome, PermanentFailure)
    assert TOKEN not in outcome.reason
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in outcome.reason
    # An unknown description is not repeated at all (reasons never carry the remote's words).
    assert outcome.reason == "telegram 400"
