"""The store platforms' pure halves: request builders, page readers, webhook verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from connectors.stores import registry
from connectors.stores.base import (
    ORDER,
    PRODUCT_DELETE,
    PRODUCT_UPSERT,
    UNINSTALLED,
    MalformedStorePayload,
    StoreResponse,
    SubscriptionRefused,
    retry_after,
    same_target,
)
from connectors.stores.salla import KIND as SALLA
from connectors.stores.shopify import KIND as SHOPIFY
from connectors.stores.shopify import next_page_info
from connectors.stores.zid import KIND as ZID
from engine.domain.catalog import product_from_mapping


def _ok(doc: object, **headers: str) -> StoreResponse:
    return StoreResponse(200, headers, json.dumps(doc).encode())


def test_the_registry_lists_the_three_platforms() -> None:
    assert sorted(registry.KINDS) == ["salla", "shopify", "zid"]


# -- Salla ------------------------------------------------------------------------------------
SALLA_ITEM = {
    "id": 1849,
    "name": "عطر عود",
    "description": "<p>oud</p>",
    "price": {"amount": 120.5, "currency": "SAR"},
    "url": "https://shop.salla.sa/p/1849",
    "main_image": "https://cdn.salla.sa/1849.jpg",
    "quantity": 3,
    "categories": [{"id": 1, "name": "عطور"}],
}


def test_salla_page_request_and_reading() -> None:
    req = SALLA.page_request("https://api.salla.dev/", {"access_token": "tok"}, "3")
    assert req.method == "GET"
    assert req.url == "https://api.salla.dev/admin/v2/products?page=3&per_page=60"
    assert req.headers["Authorization"] == "Bearer tok"
    assert "tok" not in repr(req)
    page = SALLA.parse_page(
        _ok(
            {
                "data": [SALLA_ITEM, {"no": "id"}],
                "pagination": {"currentPage": 3, "totalPages": 5, "total": 290},
            }
        )
    )
    assert page.next_cursor == "4" and page.total == 290 and page.skipped == 1
    product = product_from_mapping(page.products[0])
    assert (product.sku, product.title, product.price, product.currency) == (
        "salla-1849",
        "عطر عود",
        120.5,
        "SAR",
    )
    assert product.category == "عطور" and product.in_stock
    last = SALLA.parse_page(_ok({"data": [], "pagination": {"currentPage": 5, "totalPages": 5}}))
    assert last.next_cursor is None
    with pytest.raises(MalformedStorePayload):
        SALLA.parse_page(StoreResponse(200, {}, b"<html>"))


def _salla_signed(secret: str, doc: object) -> tuple[dict[str, str], bytes]:
    body = json.dumps(doc).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Salla-Signature": sig, "X-Salla-Security-Strategy": "Signature"}, body


def test_salla_signature_and_token_strategies() -> None:
    creds = {"webhook_secret": "s3cret"}
    headers, body = _salla_signed("s3cret", {"event": "product.updated", "data": SALLA_ITEM})
    assert SALLA.verify(creds, headers, body)
    assert not SALLA.verify(creds, headers, body + b" ")
    assert not SALLA.verify({"webhook_secret": "other"}, headers, body)
    assert not SALLA.verify(creds, {}, body)
    token = {"X-Salla-Security-Strategy": "Token", "Authorization": "Bearer s3cret"}
    assert SALLA.verify(creds, token, body)
    assert not SALLA.verify(creds, {**token, "Authorization": "Bearer nope"}, body)


def test_salla_events() -> None:
    _, body = _salla_signed("k", {"event": "product.updated", "merchant": 1, "data": SALLA_ITEM})
    event = SALLA.parse_event({}, {}, body)
    assert event.kind == PRODUCT_UPSERT and event.product is not None
    assert event.product["price"] == 120.5
    assert SALLA.parse_event({}, {}, body).event_id == event.event_id  # a redelivery
    deleted = SALLA.parse_event(
        {}, {}, json.dumps({"event": "product.deleted", "data": {"id": 1849}}).encode()
    )
    assert (deleted.kind, deleted.sku) == (PRODUCT_DELETE, "salla-1849")
    order = SALLA.parse_event(
        {},
        {},
        json.dumps(
            {
                "event": "order.status.updated",
                "data": {
                    "id": 77,
                    "reference_id": 2001,
                    "status": {"slug": "delivering", "name": "جاري التوصيل"},
                    "customer": {"mobile": 555000111, "mobile_code": "+966"},
                    "amounts": {"total": {"amount": 99, "currency": "SAR"}},
                },
            }
        ).encode(),
    )
    assert order.kind == ORDER and order.order is not None
    assert order.order["status"] == "shipped"
    assert order.order["platform_status"] == "جاري التوصيل"
    assert order.order["phone"] == "+966555000111"
    gone = SALLA.parse_event({}, {}, json.dumps({"event": "app.uninstalled", "data": {}}).encode())
    assert gone.kind == UNINSTALLED
    with pytest.raises(MalformedStorePayload):
        SALLA.parse_event({}, {}, b'{"data": {}}')


def test_salla_refresh_request_and_tokens() -> None:
    req = SALLA.refresh_request(
        "https://accounts.salla.sa",
        {"refresh_token": "r1"},
        {"client_id": "cid", "client_secret": "cs"},
    )
    assert req is not None and req.method == "POST"
    assert req.url == "https://accounts.salla.sa/oauth2/token"
    assert req.form == {
        "grant_type": "refresh_token",
        "refresh_token": "r1",
        "client_id": "cid",
        "client_secret": "cs",
    }
    assert SALLA.refresh_request("https://a", {}, {}) is None
    tokens = SALLA.parse_tokens(
        _ok({"access_token": "a2", "refresh_token": "r2", "expires_in": 1209600}), now=100.0
    )
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at) == ("a2", "r2", 1209700.0)


# -- Zid --------------------------------------------------------------------------------------
ZID_ITEM = {
    "id": "5c3a",
    "sku": "Z-1",
    "name": {"ar": "قهوة", "en": "Coffee"},
    "description": {"ar": "", "en": "Arabic coffee"},
    "price": 45,
    "currency": "SAR",
    "quantity": 0,
    "is_infinite": False,
    "html_url": "https://store.zid.store/products/5c3a",
    "images": [{"image": {"full_size": "https://media.zid.store/5c3a.jpg"}}],
}


def test_zid_page_request_and_reading() -> None:
    creds = {"authorization": "partner", "access_token": "store"}
    req = ZID.page_request("https://api.zid.sa", creds, None)
    assert req.url == "https://api.zid.sa/v1/products/?page=1&page_size=50"
    assert req.headers["Authorization"] == "Bearer partner"
    assert req.headers["Access-Token"] == "store"
    page = ZID.parse_page(
        _ok(
            {
                "count": 120,
                "next": "https://api.zid.sa/v1/products/?page=2&page_size=50",
                "previous": None,
                "results": [ZID_ITEM],
            }
        )
    )
    assert page.next_cursor == "2" and page.total == 120
    product = product_from_mapping(page.products[0])
    assert (product.sku, product.title, product.price, product.in_stock) == (
        "zid-5c3a",
        "قهوة",
        45.0,
        False,
    )
    assert product.description == "Arabic coffee"
    assert ZID.parse_page(_ok({"count": 1, "next": None, "results": []})).next_cursor is None


def test_zid_basic_credentials() -> None:
    creds = {"webhook_user": "kaleem", "webhook_password": "pw"}
    good = "Basic " + base64.b64encode(b"kaleem:pw").decode()
    assert ZID.verify(creds, {"Authorization": good}, b"{}")
    bad = "Basic " + base64.b64encode(b"kaleem:nope").decode()
    assert not ZID.verify(creds, {"Authorization": bad}, b"{}")
    assert not ZID.verify(creds, {"Authorization": "Basic !!!"}, b"{}")
    assert not ZID.verify(creds, {}, b"{}")


def test_zid_events_take_their_name_from_the_subscription_url() -> None:
    body = json.dumps(ZID_ITEM).encode()
    upsert = ZID.parse_event({}, {"event": "product.update"}, body)
    assert upsert.kind == PRODUCT_UPSERT and upsert.product is not None
    deleted = ZID.parse_event({}, {"event": "product.delete"}, b'{"id": "5c3a"}')
    assert deleted.sku == "zid-5c3a"
    order = ZID.parse_event(
        {},
        {"event": "order.status.update"},
        json.dumps(
            {"id": 9, "code": "Z9", "order_status": {"code": "indelivery", "name": "جاري التوصيل"}}
        ).encode(),
    )
    assert order.order is not None and order.order["status"] == "shipped"


# -- Shopify ----------------------------------------------------------------------------------
SHOPIFY_ITEM = {
    "id": 632910392,
    "title": "IPod Nano - 8GB",
    "body_html": "<p>It's the small iPod.</p>",
    "product_type": "Cult Products",
    "variants": [{"id": 1, "price": "199.00", "sku": "IPOD2008PINK", "inventory_quantity": 10}],
    "image": {"src": "https://cdn.shopify.com/ipod.jpg"},
}


def test_shopify_page_request_and_link_cursor() -> None:
    creds = {"shop": "demo.myshopify.com", "access_token": "shpat"}
    base = SHOPIFY.default_api_base(creds)
    assert base == "https://demo.myshopify.com"
    with pytest.raises(ValueError):
        SHOPIFY.default_api_base({"shop": "169.254.169.254"})
    first = SHOPIFY.page_request(base, creds, None)
    assert first.url == "https://demo.myshopify.com/admin/api/2024-10/products.json?limit=250"
    assert first.headers["X-Shopify-Access-Token"] == "shpat"
    later = SHOPIFY.page_request(base, creds, "eyJsYXN0")
    assert later.url.endswith("products.json?limit=250&page_info=eyJsYXN0")
    link = (
        "<https://demo.myshopify.com/admin/api/2024-10/products.json?limit=250&page_info=prev1>; "
        'rel="previous", <https://demo.myshopify.com/admin/api/2024-10/products.json'
        '?limit=250&page_info=next2>; rel="next"'
    )
    assert next_page_info(link) == "next2"
    assert next_page_info(link.split(",")[0]) is None
    page = SHOPIFY.parse_page(_ok({"products": [SHOPIFY_ITEM]}, Link=link))
    assert page.next_cursor == "next2"
    product = product_from_mapping(page.products[0])
    assert (product.sku, product.price, product.description) == (
        "shopify-632910392",
        199.0,
        "It's the small iPod.",
    )


def test_shopify_hmac_and_topics() -> None:
    body = json.dumps(SHOPIFY_ITEM).encode()
    sig = base64.b64encode(hmac.new(b"shh", body, hashlib.sha256).digest()).decode()
    headers = {
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Topic": "products/update",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }
    assert SHOPIFY.verify({"client_secret": "shh"}, headers, body)
    assert not SHOPIFY.verify({"client_secret": "shh"}, headers, body[:-1])
    assert not SHOPIFY.verify({"client_secret": "other"}, headers, body)
    event = SHOPIFY.parse_event(headers, {}, body)
    assert event.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.kind == PRODUCT_UPSERT
    deleted = SHOPIFY.parse_event(
        {**headers, "X-Shopify-Topic": "products/delete"}, {}, b'{"id": 5}'
    )
    assert deleted.sku == "shopify-5"
    gone = SHOPIFY.parse_event({**headers, "X-Shopify-Topic": "app/uninstalled"}, {}, b"{}")
    assert gone.kind == UNINSTALLED


def test_retry_after_reads_delta_seconds_and_falls_back() -> None:
    assert retry_after({"Retry-After": "2.0"}) == 2.0
    assert retry_after({"Retry-After": "soon"}, 1.5) == 1.5
    assert retry_after({}, 3.0) == 3.0
    assert retry_after({"Retry-After": "-4"}) == 1.0


# -- webhook subscriptions ----------------------------------------------------------------------
HOOK = "https://kaleem.example/webhooks/{kind}/in_0123456789abcdef"


def test_salla_subscription_builders_and_readers() -> None:
    creds = {"access_token": "at", "webhook_secret": "sec"}
    url = HOOK.format(kind="salla")
    assert "product.updated" in SALLA.webhook_topics and "order.status.updated" in (
        SALLA.webhook_topics
    )
    assert SALLA.subscription_target(url, "product.updated", creds) == url
    listing = SALLA.subscriptions_request("https://api.salla.dev", creds)
    assert (listing.method, listing.url) == ("GET", "https://api.salla.dev/admin/v2/webhooks")
    assert listing.headers["Authorization"] == "Bearer at"
    req = SALLA.subscribe_request("https://api.salla.dev/", creds, "product.updated", url)
    assert (req.method, req.url) == ("POST", "https://api.salla.dev/admin/v2/webhooks/subscribe")
    assert req.json is not None
    assert (req.json["event"], req.json["url"], req.json["version"]) == (
        "product.updated",
        url,
        2,
    )
    assert req.json["secret"] == "sec"
    assert {"key": "X-Salla-Security-Strategy", "value": "Token"} in req.json["headers"]
    assert {"key": "Authorization", "value": "Bearer sec"} in req.json["headers"]
    assert "sec" not in repr(req)
    held = SALLA.parse_subscriptions(
        _ok({"success": True, "data": [{"id": 7, "event": "order.created", "url": url}, {"id": 8}]})
    )
    assert [(s.id, s.topic, s.url) for s in held] == [("7", "order.created", url)]
    with pytest.raises(MalformedStorePayload):
        SALLA.parse_subscriptions(_ok({"data": None}))
    assert SALLA.subscribed(StoreResponse(201, {}, b"{}"))
    with pytest.raises(SubscriptionRefused) as refused:
        SALLA.subscribed(StoreResponse(401, {}, b'{"error": {"message": "secret words"}}'))
    assert refused.value.reason == "unauthorized"
    [gone] = SALLA.unsubscribe_requests("https://api.salla.dev", creds, url, held)
    assert gone.method == "DELETE"
    assert parse_qs(urlsplit(gone.url).query) == {"url": [url]}


def test_zid_subscription_carries_the_event_and_basic_credentials_in_the_target() -> None:
    creds = {
        "authorization": "partner",
        "access_token": "store",
        "webhook_user": "kaleem",
        "webhook_password": "p@ss:word",
    }
    url = HOOK.format(kind="zid")
    target = ZID.subscription_target(url, "product.update", creds)
    parts = urlsplit(target)
    assert parts.query == "event=product.update"
    assert (unquote(parts.username or ""), unquote(parts.password or "")) == (
        "kaleem",
        "p@ss:word",
    )
    assert parts.hostname == "kaleem.example" and parts.path == urlsplit(url).path
    # What the webhook handler reads: the event from the query of the URL Zid posts to.
    assert parse_qs(parts.query)["event"] == ["product.update"]
    req = ZID.subscribe_request("https://api.zid.sa", creds, "product.update", target)
    assert (req.method, req.url) == ("POST", "https://api.zid.sa/v1/managers/webhooks")
    assert req.headers["Authorization"] == "Bearer partner"
    assert req.headers["X-Manager-Token"] == "store"
    assert req.json is not None
    assert req.json["event"] == "product.update" and req.json["target_url"] == target
    assert isinstance(req.json["original_id"], int) and req.json["subscriber"]
    held = ZID.parse_subscriptions(
        _ok(
            {
                "status": "object",
                "webhooks": [
                    {"id": "u-1", "event": "product.update", "target_url": target},
                    {"id": "u-2", "event": "order.create", "target_url": "https://other.example/x"},
                ],
            }
        )
    )
    assert [s.id for s in held] == ["u-1", "u-2"]
    # Only our own subscriptions are removed (a listed URL may lack the user info).
    [gone] = ZID.unsubscribe_requests("https://api.zid.sa", creds, url, held)
    assert (gone.method, gone.url) == ("DELETE", "https://api.zid.sa/v1/managers/webhooks/u-1")
    with pytest.raises(MalformedStorePayload):
        ZID.parse_subscriptions(_ok({"status": "object"}))


def test_shopify_subscription_and_already_taken_counts_as_done() -> None:
    creds = {"shop": "demo.myshopify.com", "access_token": "shpat", "client_secret": "s"}
    url = HOOK.format(kind="shopify")
    assert {"products/update", "products/delete", "orders/updated", "app/uninstalled"} <= set(
        SHOPIFY.webhook_topics
    )
    base = "https://demo.myshopify.com"
    req = SHOPIFY.subscribe_request(base, creds, "products/update", url)
    assert (req.method, req.url) == ("POST", f"{base}/admin/api/2024-10/webhooks.json")
    assert req.json == {"webhook": {"topic": "products/update", "address": url, "format": "json"}}
    assert req.headers["X-Shopify-Access-Token"] == "shpat"
    taken = b'{"errors": {"address": ["for this topic has already been taken"]}}'
    assert SHOPIFY.subscribed(StoreResponse(422, {}, taken))
    with pytest.raises(SubscriptionRefused) as refused:
        SHOPIFY.subscribed(StoreResponse(422, {}, b'{"errors": {"topic": ["Invalid topic"]}}'))
    assert refused.value.reason == "http_4xx"
    with pytest.raises(SubscriptionRefused) as down:
        SHOPIFY.subscribed(StoreResponse(503, {}, b"<html>"))
    assert down.value.reason == "http_5xx"
    listing = SHOPIFY.subscriptions_request(base, creds)
    assert listing.url == f"{base}/admin/api/2024-10/webhooks.json?limit=250"
    held = SHOPIFY.parse_subscriptions(
        _ok(
            {
                "webhooks": [
                    {"id": 11, "topic": "products/update", "address": url},
                    {"id": 12, "topic": "orders/create", "address": "https://else.example/h"},
                ]
            }
        )
    )
    [gone] = SHOPIFY.unsubscribe_requests(base, creds, url, held)
    assert (gone.method, gone.url) == ("DELETE", f"{base}/admin/api/2024-10/webhooks/11.json")


def test_every_subscribed_topic_is_one_the_webhook_reader_applies() -> None:
    """A topic we subscribe to must not land as "ignored" when it arrives."""
    for topic in SALLA.webhook_topics:
        body = json.dumps({"event": topic, "data": {"id": 1, "name": "x", "price": 1}}).encode()
        assert SALLA.parse_event({}, {}, body).kind != "ignored", topic
    for topic in ZID.webhook_topics:
        event = ZID.parse_event({}, {"event": topic}, b'{"id": "1", "name": "x", "price": 1}')
        assert event.kind != "ignored", topic
    for topic in SHOPIFY.webhook_topics:
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": "w"}
        body = b'{"id": 1, "title": "x", "variants": [{"price": "1.00"}]}'
        assert SHOPIFY.parse_event(headers, {}, body).kind != "ignored", topic


def test_same_target_ignores_user_info_and_host_case() -> None:
    ours = "https://kaleem.example/webhooks/zid/x"
    assert same_target("https://u:p@Kaleem.Example/webhooks/zid/x?event=a", f"{ours}?event=a")
    assert not same_target(f"{ours}?event=a", f"{ours}?event=b")
    assert same_target(f"{ours}?event=a", ours, query=False)
    assert not same_target("https://kaleem.example/w/x", "https://evil.example/w/x")
    assert not same_target("https://kaleem.example:bad/w", "https://kaleem.example/w")
