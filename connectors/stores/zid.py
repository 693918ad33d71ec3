"""Zid (zid.sa): the Merchant API and its webhooks.

* Catalogue: ``GET {api_base}/v1/products/?page=N&page_size=50`` with two tokens,
  ``Authorization: Bearer <authorization>`` (the partner's) and ``Access-Token: <access_token>``
  (the store's); the answer is ``{"count", "next", "previous", "results": [...]}`` with names
  and descriptions as ``{ar, en}``. About 60 requests a minute; over it, 429 + ``Retry-After``.
* Subscriptions: ``POST {api_base}/v1/managers/webhooks`` ``{event, target_url, original_id,
  subscriber}`` with the partner token and the store's ``X-Manager-Token``, one per event;
  listed by ``GET /v1/managers/webhooks`` (``{"webhooks": [...]}``), removed one by one with
  ``DELETE /v1/managers/webhooks/{id}``. The target URL is ours with ``?event=...`` and the
  Basic credentials as its user info, which is how Zid's deliveries carry them.
* Webhooks: Zid posts the record itself (a product, an order) to the target URL given when
  subscribing, with the Basic credentials set then. The event name is not in the body, so the
  subscription's target URL carries it as ``?event=product.update``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from connectors.stores.base import (
    IGNORED,
    ORDER,
    PRODUCT_DELETE,
    PRODUCT_UPSERT,
    UNINSTALLED,
    MalformedStorePayload,
    StoreEvent,
    StoreKind,
    StorePage,
    StoreRequest,
    StoreResponse,
    Subscription,
    header,
    json_body,
    product_sku,
    read_rows,
    same_target,
    subscription_list,
    text_of,
)

API_BASE: Final = "https://api.zid.sa"
PAGE_SIZE: Final = 50
SUBSCRIBER: Final = "Kaleem"
# The store events we apply; the app's uninstall reaches the Partner dashboard's webhook.
TOPICS: Final = (
    "product.create",
    "product.update",
    "product.delete",
    "order.create",
    "order.status.update",
)

_STATUS: Final = {
    "new": "new",
    "preparing": "confirmed",
    "ready": "confirmed",
    "indelivery": "shipped",
    "delivered": "delivered",
    "cancelled": "cancelled",
}


def product_row(item: Mapping[str, Any]) -> dict[str, Any]:
    images = item.get("images") or []
    image = ""
    if images and isinstance(images[0], Mapping):
        picture = images[0].get("image") or {}
        image = picture.get("full_size") or "" if isinstance(picture, Mapping) else ""
    quantity = item.get("quantity")
    return {
        "sku": product_sku("zid", item["id"]),
        "title": text_of(item.get("name")),
        "description": text_of(item.get("description")),
        "price": item.get("sale_price") or item.get("price"),
        "currency": item.get("currency") or None,
        "url": item.get("html_url") or None,
        "image_url": image or None,
        "in_stock": bool(item.get("is_infinite")) or not isinstance(quantity, int) or quantity > 0,
    }


def order_row(item: Mapping[str, Any]) -> dict[str, Any]:
    status = item.get("order_status") or {}
    code = str(status.get("code") or "") if isinstance(status, Mapping) else str(status)
    customer = item.get("customer") or {}
    return {
        "platform_id": str(item["id"]),
        "number": str(item.get("code") or item["id"]),
        "platform_status": (text_of(status.get("name")) if isinstance(status, Mapping) else code)
        or code,
        "status": _STATUS.get(code, "confirmed"),
        "phone": str(customer.get("mobile") or "") if isinstance(customer, Mapping) else "",
        "total": item.get("order_total"),
        "currency": item.get("currency_code") or None,
    }


def _target(webhook_url: str, topic: str, credentials: Mapping[str, str]) -> str:
    parts = urlsplit(webhook_url)
    user = quote(credentials.get("webhook_user", ""), safe="")
    password = quote(credentials.get("webhook_password", ""), safe="")
    host = parts.netloc.rpartition("@")[2]
    query = urlencode({"event": topic})
    return urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, query, ""))


def _original_id(topic: str) -> int:
    """Zid wants an integer of ours per subscription: the event's place in our list."""
    return TOPICS.index(topic) + 1 if topic in TOPICS else 0


def _manager_headers(credentials: Mapping[str, str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {credentials['authorization']}",
        "X-Manager-Token": credentials["access_token"],
        "Accept": "application/json",
        "Accept-Language": "en",
    }


class Zid(StoreKind):
    kind = "zid"
    api_hosts = ("api.zid.sa",)
    required = ("authorization", "access_token", "webhook_user", "webhook_password")
    page_size = PAGE_SIZE

    def default_api_base(self, credentials: Mapping[str, str]) -> str:
        return API_BASE

    def page_request(
        self, api_base: str, credentials: Mapping[str, str], cursor: str | None
    ) -> StoreRequest:
        query = urlencode({"page": cursor or "1", "page_size": PAGE_SIZE})
        return StoreRequest(
            "GET",
            f"{api_base.rstrip('/')}/v1/products/?{query}",
            {
                "Authorization": f"Bearer {credentials['authorization']}",
                "Access-Token": credentials["access_token"],
                "Accept": "application/json",
            },
        )

    def parse_page(self, response: StoreResponse) -> StorePage:
        doc = json_body(response.body)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("results"), list):
            raise MalformedStorePayload("no results list")
        rows, skipped = read_rows(doc["results"], product_row)
        nxt = doc.get("next")
        cursor = None
        if isinstance(nxt, str) and nxt:
            pages = parse_qs(urlsplit(nxt).query).get("page")
            if not pages:
                raise MalformedStorePayload("next link has no page")
            cursor = pages[0]
        count = doc.get("count")
        return StorePage(rows, cursor, count if isinstance(count, int) else None, skipped)

    def pause_after(self, headers: Mapping[str, str], now: float) -> float:
        """Zid allows 60 requests a minute: with the minute's last one spent, wait a second
        (one request's share of the window)."""
        raw = header(headers, "X-RateLimit-Remaining")
        return 1.0 if raw.strip() == "0" else 0.0

    def verify(
        self, credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> bool:
        user = credentials.get("webhook_user", "")
        password = credentials.get("webhook_password", "")
        auth = header(headers, "Authorization")
        if not user or not password or not auth.lower().startswith("basic "):
            return False
        try:
            given = base64.b64decode(auth[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, f"{user}:{password}".encode())

    def parse_event(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> StoreEvent:
        event = query.get("event", "")
        doc = json_body(body)
        if not isinstance(doc, Mapping):
            raise MalformedStorePayload("not an object")
        event_id = f"{event}:{hashlib.sha256(body).hexdigest()}"
        try:
            if event in ("product.create", "product.update", "product.publish"):
                return StoreEvent(event_id, PRODUCT_UPSERT, product=product_row(doc))
            if event == "product.delete":
                return StoreEvent(event_id, PRODUCT_DELETE, sku=product_sku("zid", doc["id"]))
            if event.startswith("order."):
                return StoreEvent(event_id, ORDER, order=order_row(doc))
        except (KeyError, TypeError, AttributeError):
            raise MalformedStorePayload("event data is incomplete") from None
        if event == "app.market.application.uninstall":
            return StoreEvent(event_id, UNINSTALLED)
        return StoreEvent(event_id, IGNORED)

    # -- webhook subscriptions ------------------------------------------------------------------
    webhook_topics = TOPICS

    def subscription_target(
        self, webhook_url: str, topic: str, credentials: Mapping[str, str]
    ) -> str:
        return _target(webhook_url, topic, credentials)

    def subscriptions_request(self, api_base: str, credentials: Mapping[str, str]) -> StoreRequest:
        return StoreRequest(
            "GET", f"{api_base.rstrip('/')}/v1/managers/webhooks", _manager_headers(credentials)
        )

    def parse_subscriptions(self, response: StoreResponse) -> list[Subscription]:
        return subscription_list(response.body, "webhooks", "event", "target_url")

    def subscribe_request(
        self, api_base: str, credentials: Mapping[str, str], topic: str, target: str
    ) -> StoreRequest:
        return StoreRequest(
            "POST",
            f"{api_base.rstrip('/')}/v1/managers/webhooks",
            {**_manager_headers(credentials), "Content-Type": "application/json"},
            json={
                "event": topic,
                "target_url": target,
                "original_id": _original_id(topic),
                "subscriber": SUBSCRIBER,
            },
        )

    def unsubscribe_requests(
        self,
        api_base: str,
        credentials: Mapping[str, str],
        webhook_url: str,
        held: list[Subscription],
    ) -> list[StoreRequest]:
        base = api_base.rstrip("/")
        return [
            StoreRequest(
                "DELETE",
                f"{base}/v1/managers/webhooks/{quote(sub.id, safe='')}",
                _manager_headers(credentials),
            )
            for sub in held
            if same_target(sub.url, webhook_url, query=False)
        ]


KIND: Final = Zid()
