"""Moyasar and Tap: the pure request builders, answer readers and webhook verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from connectors.payments import moyasar, tap
from engine.domain.payments import (
    FAILED,
    PAID,
    REFUNDED,
    Charge,
    Created,
    Declined,
    Refunded,
    format_major,
    may_become,
    refund_step,
    to_minor,
)

CHARGE = Charge(
    payment_id="pay_1",
    order_id="ord_1",
    amount_minor=28900,
    currency="SAR",
    description="Order ord_1",
    webhook_url="https://kaleem.example/webhooks/payments/tap/m_1",
    customer_name="Sara",
    customer_phone="966500000001",
)


def test_minor_units_follow_the_currency_exponent() -> None:
    assert to_minor(289.0, "SAR") == 28900
    assert to_minor(0.1 + 0.2, "SAR") == 30  # float noise does not leak into halalas
    assert to_minor("1.2345", "KWD") == 1235
    assert to_minor(500, "JPY") == 500
    assert format_major(1050, "SAR") == "10.50"
    assert format_major(1250, "KWD") == "1.250"
    assert format_major(7, "JPY") == "7"


def test_status_only_moves_forward() -> None:
    assert may_become("initiated", PAID) and may_become(PAID, REFUNDED)
    assert may_become(FAILED, PAID)
    assert not may_become(PAID, FAILED) and not may_become(REFUNDED, PAID)
    assert not may_become(PAID, PAID)


def test_a_refund_event_adds_only_what_the_payment_has_not_counted() -> None:
    # A total (Moyasar): the part above what is already refunded.
    assert refund_step(28900, 0, refunded_total=900, refund_minor=0) == (900, 900)
    assert refund_step(28900, 900, refunded_total=28900, refund_minor=0) == (28000, 28900)
    assert refund_step(28900, 900, refunded_total=900, refund_minor=0) is None  # seen already
    assert refund_step(28900, 28900, refunded_total=900, refund_minor=0) is None  # a late one
    # A size (Tap): added, never beyond what was paid.
    assert refund_step(28900, 900, refunded_total=0, refund_minor=500) == (500, 1400)
    assert refund_step(28900, 28800, refunded_total=0, refund_minor=500) == (100, 28900)
    assert refund_step(28900, 28900, refunded_total=0, refund_minor=500) is None


# -- Moyasar ------------------------------------------------------------------------------------
MOYASAR = {"secret_key": "sk_test_abcdef123456", "webhook_secret": "whsec-moyasar-123"}


def test_moyasar_invoice_request_is_in_halalas_with_basic_auth() -> None:
    call = moyasar.create_call("https://api.moyasar.com", MOYASAR, CHARGE)
    assert (call.method, call.url) == ("POST", "https://api.moyasar.com/v1/invoices")
    assert call.json["amount"] == 28900 and call.json["currency"] == "SAR"
    assert call.json["metadata"] == {"payment_id": "pay_1", "order_id": "ord_1"}
    user = base64.b64decode(call.headers["Authorization"].removeprefix("Basic ")).decode()
    assert user == "sk_test_abcdef123456:"


def test_moyasar_answers_are_read_into_fixed_outcomes() -> None:
    ok = json.dumps(
        {"id": "inv_1", "status": "initiated", "url": "https://checkout.moyasar.com/i/1"}
    )
    assert moyasar.read_created(201, ok.encode()) == Created(
        "inv_1", "https://checkout.moyasar.com/i/1"
    )
    refused = moyasar.read_created(401, b'{"type":"authentication_error","message":"Invalid"}')
    assert isinstance(refused, Declined) and not refused.retryable
    assert "Invalid" not in refused.reason  # never the provider's words
    assert moyasar.read_created(503, b"oops") == Declined("provider unavailable", True, 503)
    assert isinstance(moyasar.read_created(201, b"not json"), Declined)
    assert isinstance(moyasar.read_created(201, b'{"id":"x","url":"http://plain"}'), Declined)
    paid = json.dumps({"id": "pm_1", "status": "refunded", "refunded": 28900}).encode()
    assert moyasar.read_refunded(200, paid, 28900) == Refunded("pm_1:refund:28900", 28900)


def moyasar_event(kind: str = "payment_paid", token: str = "whsec-moyasar-123") -> bytes:
    return json.dumps(
        {
            "id": "evt_1",
            "type": kind,
            "created_at": "2026-12-03T07:00:00Z",
            "secret_token": token,
            "live": False,
            "data": {
                "id": "pm_1",
                "status": "paid",
                "amount": 28900,
                "fee": 620,
                "currency": "SAR",
                "invoice_id": "inv_1",
                "metadata": {"payment_id": "pay_1", "order_id": "ord_1"},
            },
        }
    ).encode()


def test_moyasar_webhook_secret_token_is_checked() -> None:
    assert moyasar.verify(MOYASAR, {}, moyasar_event())
    assert not moyasar.verify(MOYASAR, {}, moyasar_event(token="whsec-moyasar-124"))
    assert not moyasar.verify(MOYASAR, {}, moyasar_event(token=""))
    assert not moyasar.verify({**MOYASAR, "webhook_secret": ""}, {}, moyasar_event(token=""))
    assert not moyasar.verify(MOYASAR, {}, b"[1, 2]")


@pytest.mark.parametrize(
    ("kind", "status"),
    [("payment_paid", PAID), ("payment_failed", FAILED), ("payment_refunded", REFUNDED)],
)
def test_moyasar_events_are_parsed(kind: str, status: str) -> None:
    event = moyasar.parse(moyasar_event(kind))
    assert event is not None
    assert (event.event_id, event.status, event.provider_ref) == ("evt_1", status, "inv_1")
    assert (event.amount_minor, event.fee_minor, event.currency) == (28900, 620, "SAR")
    assert event.metadata["payment_id"] == "pay_1"
    assert moyasar.parse(moyasar_event("payment_voided")) is None


def test_a_moyasar_refund_event_names_the_refund_as_the_refund_api_does() -> None:
    body = json.loads(moyasar_event("payment_refunded"))
    body["data"] |= {"id": "pm_1", "status": "refunded", "refunded": 900}
    event = moyasar.parse(json.dumps(body).encode())
    assert event is not None
    answer = json.dumps({"id": "pm_1", "status": "refunded", "refunded": 900}).encode()
    refunded = moyasar.read_refunded(200, answer, 900)
    assert isinstance(refunded, Refunded)
    assert event.refund_ref == refunded.refund_ref == "pm_1:refund:900"
    assert (event.refunded_minor, event.refund_minor) == (900, 0)  # a total, not a size


# -- Tap ----------------------------------------------------------------------------------------
TAP = {"secret_key": "sk_test_tap_XKokBfNWv6FIYuTMg5sLPjhJ"}


def test_tap_charge_request_is_in_major_units_with_an_idempotent_reference() -> None:
    call = tap.create_call("https://api.tap.company", TAP, CHARGE)
    assert call.url == "https://api.tap.company/v2/charges"
    assert call.headers["Authorization"] == f"Bearer {TAP['secret_key']}"
    assert call.json["amount"] == 289.0 and call.json["currency"] == "SAR"
    assert call.json["reference"]["idempotent"] == "pay_1"
    assert call.json["post"]["url"] == CHARGE.webhook_url
    refund = tap.refund_call("https://api.tap.company", TAP, "chg_1", 1000, "KWD", "rf_1")
    assert refund.json["amount"] == 1.0 and refund.json["reference"]["idempotent"] == "rf_1"


def tap_charge(
    status: str = "CAPTURED", amount: Any = 289, currency: str = "SAR"
) -> dict[str, Any]:
    return {
        "id": "chg_TS01A",
        "object": "charge",
        "status": status,
        "amount": amount,
        "currency": currency,
        "reference": {"gateway": "gw_123", "payment": "pr_456", "transaction": "pay_1"},
        "transaction": {"created": "1764745200000", "url": "https://checkout.tap.company/x"},
        "metadata": {"payment_id": "pay_1", "order_id": "ord_1"},
    }


def documented_hash(doc: dict[str, Any], key: str, amount: str) -> str:
    """The hashstring as Tap's docs spell it, written out independently of the connector."""
    msg = (
        f"x_id{doc['id']}x_amount{amount}x_currency{doc['currency']}"
        f"x_gateway_reference{doc['reference']['gateway']}"
        f"x_payment_reference{doc['reference']['payment']}"
        f"x_status{doc['status']}x_created{doc['transaction']['created']}"
    )
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


def test_tap_hashstring_formats_the_amount_with_the_currency_decimals() -> None:
    sar = tap_charge(amount=289)
    assert tap.hash_string(sar, TAP["secret_key"]) == documented_hash(
        sar, TAP["secret_key"], "289.00"
    )
    kwd = tap_charge(amount=1.25, currency="KWD")
    assert tap.hash_string(kwd, TAP["secret_key"]) == documented_hash(
        kwd, TAP["secret_key"], "1.250"
    )


def test_tap_webhook_is_verified_by_hmac() -> None:
    doc = tap_charge()
    body = json.dumps(doc).encode()
    good = {"hashstring": documented_hash(doc, TAP["secret_key"], "289.00")}
    assert tap.verify(TAP, good, body)
    assert not tap.verify({"secret_key": "sk_other_key_1234"}, good, body)
    assert not tap.verify(TAP, {}, body)
    tampered = json.dumps({**doc, "amount": 1}).encode()  # amount changed after signing
    assert not tap.verify(TAP, good, tampered)


def test_tap_events_are_parsed() -> None:
    paid = tap.parse(json.dumps(tap_charge()).encode())
    assert paid is not None and paid.status == PAID
    assert (paid.event_id, paid.provider_ref, paid.amount_minor) == (
        "chg_TS01A:CAPTURED",
        "chg_TS01A",
        28900,
    )
    failed = tap.parse(json.dumps(tap_charge("DECLINED")).encode())
    assert failed is not None and failed.status == FAILED
    assert tap.parse(json.dumps(tap_charge("INITIATED")).encode()) is None
    refund = {**tap_charge("REFUNDED"), "id": "re_1", "object": "refund", "charge_id": "chg_TS01A"}
    parsed = tap.parse(json.dumps(refund).encode())
    assert parsed is not None and parsed.status == REFUNDED and parsed.provider_ref == "chg_TS01A"
    # The refund is named as the refund API named it, with its own size (not a total).
    assert (parsed.refund_ref, parsed.refund_minor, parsed.refunded_minor) == (
        "re_1",
        parsed.amount_minor,
        0,
    )


def test_tap_answers_are_read_into_fixed_outcomes() -> None:
    body = json.dumps(tap_charge("INITIATED")).encode()
    assert tap.read_created(200, body) == Created("chg_TS01A", "https://checkout.tap.company/x")
    assert tap.read_created(429, b"{}") == Declined("provider unavailable", True, 429)
    assert tap.read_created(400, b'{"errors":[{"code":"1108"}]}').retryable is False  # type: ignore[union-attr]
    assert tap.read_refunded(200, b'{"id":"re_1","status":"PENDING"}', 500) == Refunded("re_1", 500)
