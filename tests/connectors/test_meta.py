"""Pure Meta connector: signatures, handshake, parsing every item, Graph error mapping."""

from __future__ import annotations

import orjson
import pytest

from connectors import meta, whatsapp
from connectors.base import Delivered, Inbound, MalformedPayload, PermanentFailure, RetryLater
from connectors.instagram import split_utf8
from engine.domain.messages import OutboundReply, ProductCard


def test_signature_is_sha256_over_raw_bytes_and_constant_time() -> None:
    body = b'{"object":"page","entry":[]}'
    good = meta.sign("s3cret", body)
    assert meta.verify_signature("s3cret", body, good)
    assert not meta.verify_signature("s3cret", body + b" ", good)
    assert not meta.verify_signature("other", body, good)
    assert not meta.verify_signature("s3cret", body, good.replace("sha256", "sha1"))
    assert not meta.verify_signature("s3cret", body, None)
    assert not meta.verify_signature("", body, good)
    assert not meta.verify_signature("s3cret", body, "sha256=ü")


def test_challenge_only_for_subscribe_with_matching_token() -> None:
    assert meta.verify_challenge("vt", "subscribe", "vt", "123") == "123"
    assert meta.verify_challenge("vt", "subscribe", "nope", "123") is None
    assert meta.verify_challenge("vt", None, "vt", "123") is None
    assert meta.verify_challenge("", "subscribe", "", "123") is None


def _wa(messages: list[dict[str, object]], number: str = "111") -> bytes:
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "w",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "metadata": {"phone_number_id": number},
                                "messages": messages,
                            },
                        }
                    ],
                }
            ],
        }
    )


def _parse_wa(body: bytes) -> Inbound:
    return whatsapp.parse_whatsapp(
        body, merchant_id="m", channel_id="c", phone_number_id="111", received_at=1.0
    )


def test_whatsapp_message_kinds() -> None:
    body = _wa(
        [
            {
                "from": "1",
                "id": "a",
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "product:Red mug#M-1", "title": "Red m…"},
                },
            },
            {"from": "2", "id": "b", "type": "button", "button": {"payload": "x", "text": "Yes"}},
            {
                "from": "3",
                "id": "c",
                "type": "location",
                "location": {"latitude": 24.7, "longitude": 46.6, "name": "Home"},
            },
            {
                "from": "4",
                "id": "d",
                "type": "reaction",
                "reaction": {"message_id": "wamid.OUT", "emoji": "👍"},
            },
            {"from": "5", "id": "e", "type": "sticker", "sticker": {"id": "s"}},
        ]
    )
    parsed = _parse_wa(body)
    texts = {m.message_id: m.text for m in parsed.messages}
    assert texts["a"] == "Red mug"
    assert texts["b"] == "Yes"
    assert texts["c"].startswith("📍 Home")
    assert (
        parsed.events[0].kind == "reaction" and parsed.events[0].provider_message_id == "wamid.OUT"
    )
    assert parsed.ignored == 1


def test_whatsapp_other_number_is_skipped_and_bad_shapes_raise() -> None:
    assert (
        _parse_wa(
            _wa([{"from": "1", "id": "a", "type": "text", "text": {"body": "x"}}], "999")
        ).messages
        == []
    )
    with pytest.raises(MalformedPayload):
        _parse_wa(_wa([{"id": "a"}]))
    with pytest.raises(MalformedPayload):
        _parse_wa(b'{"object": "page", "entry": []}')


@pytest.mark.parametrize(
    "status, code, expected, fragment",
    [
        (400, 130429, RetryLater, "130429"),
        (400, 131056, RetryLater, "131056"),
        (401, 190, PermanentFailure, "invalid token"),
        (400, 131047, PermanentFailure, "window"),
        (503, None, RetryLater, "503"),
        (400, 100, PermanentFailure, "100"),
    ],
)
def test_graph_errors_map_to_outcomes(
    status: int, code: int | None, expected: type, fragment: str
) -> None:
    error: dict[str, object] = {"message": "m", "type": "OAuthException"}
    if code is not None:
        error["code"] = code
    outcome = meta.interpret_response(
        status, orjson.dumps({"error": error}), None, product="whatsapp"
    )
    assert isinstance(outcome, expected)
    assert fragment in outcome.reason  # type: ignore[union-attr]


def test_retry_after_header_and_success_ids() -> None:
    outcome = meta.interpret_response(429, b"{}", "7", product="messenger")
    assert isinstance(outcome, RetryLater) and outcome.after_s == 7.0
    ok = meta.interpret_response(
        200, b'{"messages": [{"id": "wamid.X"}]}', None, product="whatsapp"
    )
    assert ok == Delivered("wamid.X")
    assert meta.interpret_response(
        200, b'{"message_id": "m_1"}', None, product="messenger"
    ) == Delivered("m_1")


def test_instagram_split_respects_bytes() -> None:
    chunks = split_utf8("مرحبا بكم " * 300)
    assert all(len(c.encode()) <= 1000 for c in chunks) and len(chunks) > 3


def test_whatsapp_row_ids_round_trip_to_titles() -> None:
    reply = OutboundReply(
        "o",
        "m",
        "c",
        "whatsapp",
        "966",
        "Pick:",
        "i",
        False,
        ("x",),
        1.0,
        products=tuple(ProductCard(f"S{i}", f"Product {i}", 1.0, "SAR", None) for i in range(5)),
    )
    [call] = whatsapp.build_messages("http://x", "v21.0", "111", "tok", reply)
    rows = call.json["interactive"]["action"]["sections"][0]["rows"]
    assert whatsapp.product_text_from_id(rows[3]["id"]) == "Product 3"
    assert call.headers["Authorization"] == "Bearer tok"
    assert "tok" not in repr(call)
