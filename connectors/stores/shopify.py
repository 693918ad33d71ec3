"""Shopify: the Admin REST API and its webhooks.

* Catalogue: ``GET https://{shop}/admin/api/{version}/products.json?limit=250`` with
  ``X-Shopify-Access-Token``; the next page is the ``Link: <...page_info=...>; rel="next"``
  header's cursor (page numbers are not accepted). A leaky bucket of 40 calls refilling 2 a
  second; over it, 429 + ``Retry-After``.
* Subscriptions: ``POST /admin/api/{version}/webhooks.json`` ``{"webhook": {topic, address,
  format}}`` per topic (a second one for the same topic and address is 422 "has already been
  taken": done), listed by ``GET .../webhooks.json?limit=250``, removed with
  ``DELETE .../webhooks/{id}.json``.
* Webhooks: ``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256 of the raw body with the app's
  client secret, ``X-Shopify-Topic`` names the event, ``X-Shopify-Webhook-Id`` is the same on
  every redelivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

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
    SubscriptionRefused,
    header,
    json_body,
    product_sku,
    read_rows,
    same_target,
    status_reason,
    subscription_list,
)

API_VERSION: Final = "2024-10"
LIMIT: Final = 250
TOPICS: Final = (
    "products/create",
    "products/update",
    "products/delete",
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "app/uninstalled",
)
_LINK_RE: Final = re.compile(r"<([^>]+)>\s*;\s*rel=\"?([a-z]+)\"?")
_TAG_RE: Final = re.compile(r"<[^>]*>")
_SHOP_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def next_page_info(link: str) -> str | None:
    """The ``page_info`` cursor of the ``rel="next"`` link, or None on the last page."""
    for url, rel in _LINK_RE.findall(link):
        if rel == "next":
            info = parse_qs(urlsplit(url).query).get("page_info")
            if not info:
                raise MalformedStorePayload("next link has no page_info")
            return str(info[0])
    return None


def product_row(item: Mapping[str, Any]) -> dict[str, Any]:
    variants = [v for v in item.get("variants") or [] if isinstance(v, Mapping)]
    first = variants[0] if variants else {}
    image = item.get("image") or {}
    quantity = sum(
        int(v["inventory_quantity"])
        for v in variants
        if isinstance(v.get("inventory_quantity"), int)
    )
    tracked = any(isinstance(v.get("inventory_quantity"), int) for v in variants)
    return {
        "sku": product_sku("shopify", item["id"]),
        "title": str(item.get("title") or "").strip(),
        "description": _TAG_RE.sub(" ", str(item.get("body_html") or "")).strip(),
        "price": first.get("price"),
        "category": str(item.get("product_type") or "").strip() or None,
        "image_url": (image.get("src") if isinstance(image, Mapping) else None) or None,
        "in_stock": not tracked or quantity > 0,
    }


def order_row(item: Mapping[str, Any]) -> dict[str, Any]:
    fulfilment = str(item.get("fulfillment_status") or "")
    if item.get("cancelled_at"):
        status = "cancelled"
    elif fulfilment == "fulfilled":
        status = "shipped"
    else:
        status = "confirmed"
    customer = item.get("customer") or {}
    phone = item.get("phone") or (customer.get("phone") if isinstance(customer, Mapping) else "")
    return {
        "platform_id": str(item["id"]),
        "number": str(item.get("name") or item.get("order_number") or item["id"]),
        "platform_status": fulfilment or str(item.get("financial_status") or ""),
        "status": status,
        "phone": str(phone or ""),
        "total": item.get("total_price"),
        "currency": item.get("currency") or None,
    }


class Shopify(StoreKind):
    kind = "shopify"
    api_hosts = ()  # every shop is its own host: checked by shape in ``default_api_base``
    required = ("shop", "access_token", "client_secret")
    page_size = LIMIT

    def default_api_base(self, credentials: Mapping[str, str]) -> str:
        shop = credentials.get("shop", "").lower()
        if not _SHOP_RE.match(shop):
            raise ValueError("shop must be a name.myshopify.com domain")
        return f"https://{shop}"

    def page_request(
        self, api_base: str, credentials: Mapping[str, str], cursor: str | None
    ) -> StoreRequest:
        params: dict[str, str | int] = {"limit": LIMIT}
        if cursor:
            params["page_info"] = cursor
        return StoreRequest(
            "GET",
            f"{api_base.rstrip('/')}/admin/api/{API_VERSION}/products.json?{urlencode(params)}",
            {"X-Shopify-Access-Token": credentials["access_token"], "Accept": "application/json"},
        )

    def parse_page(self, response: StoreResponse) -> StorePage:
        doc = json_body(response.body)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("products"), list):
            raise MalformedStorePayload("no products list")
        rows, skipped = read_rows(doc["products"], product_row)
        return StorePage(rows, next_page_info(header(response.headers, "Link")), None, skipped)

    def pause_after(self, headers: Mapping[str, str], now: float) -> float:
        """``X-Shopify-Shop-Api-Call-Limit: used/size``; the bucket leaks two calls a second,
        so a nearly full bucket waits for one call's room."""
        used, _, size = header(headers, "X-Shopify-Shop-Api-Call-Limit").partition("/")
        try:
            return 0.5 if int(size) - int(used) <= 1 else 0.0
        except ValueError:
            return 0.0

    def verify(
        self, credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> bool:
        secret = credentials.get("client_secret", "")
        given = header(headers, "X-Shopify-Hmac-Sha256").strip()
        if not secret or not given:
            return False
        wanted = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
        return hmac.compare_digest(given.encode(), wanted)

    def parse_event(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> StoreEvent:
        topic = header(headers, "X-Shopify-Topic")
        event_id = header(headers, "X-Shopify-Webhook-Id") or hashlib.sha256(body).hexdigest()
        doc = json_body(body)
        if not isinstance(doc, Mapping):
            raise MalformedStorePayload("not an object")
        try:
            if topic in ("products/create", "products/update"):
                return StoreEvent(event_id, PRODUCT_UPSERT, product=product_row(doc))
            if topic == "products/delete":
                return StoreEvent(event_id, PRODUCT_DELETE, sku=product_sku("shopify", doc["id"]))
            if topic.startswith("orders/"):
                return StoreEvent(event_id, ORDER, order=order_row(doc))
        except (KeyError, TypeError, AttributeError):
            raise MalformedStorePayload("event data is incomplete") from None
        if topic == "app/uninstalled":
            return StoreEvent(event_id, UNINSTALLED)
        return StoreEvent(event_id, IGNORED)

    # -- webhook subscriptions ------------------------------------------------------------------
    webhook_topics = TOPICS

    def _headers(self, credentials: Mapping[str, str]) -> dict[str, str]:
        return {"X-Shopify-Access-Token": credentials["access_token"], "Accept": "application/json"}

    def subscriptions_request(self, api_base: str, credentials: Mapping[str, str]) -> StoreRequest:
        return StoreRequest(
            "GET",
            f"{api_base.rstrip('/')}/admin/api/{API_VERSION}/webhooks.json?limit={LIMIT}",
            self._headers(credentials),
        )

    def parse_subscriptions(self, response: StoreResponse) -> list[Subscription]:
        return subscription_list(response.body, "webhooks", "topic", "address")

    def subscribe_request(
        self, api_base: str, credentials: Mapping[str, str], topic: str, target: str
    ) -> StoreRequest:
        return StoreRequest(
            "POST",
            f"{api_base.rstrip('/')}/admin/api/{API_VERSION}/webhooks.json",
            {**self._headers(credentials), "Content-Type": "application/json"},
            json={"webhook": {"topic": topic, "address": target, "format": "json"}},
        )

    def subscribed(self, response: StoreResponse) -> bool:
        """201 made it; 422 saying the address "has already been taken" for the topic means
        it was there already (a retry after a lost answer)."""
        if response.status in (200, 201):
            return True
        if response.status == 422:
            try:
                doc = json_body(response.body)
            except MalformedStorePayload:
                doc = None
            errors = doc.get("errors") if isinstance(doc, Mapping) else None
            address = errors.get("address") if isinstance(errors, Mapping) else None
            words = address if isinstance(address, list) else [address]
            if any(isinstance(w, str) and "already been taken" in w for w in words):
                return True
        raise SubscriptionRefused(status_reason(response.status))

    def unsubscribe_requests(
        self,
        api_base: str,
        credentials: Mapping[str, str],
        webhook_url: str,
        held: list[Subscription],
    ) -> list[StoreRequest]:
        base = f"{api_base.rstrip('/')}/admin/api/{API_VERSION}"
        return [
            StoreRequest("DELETE", f"{base}/webhooks/{sub.id}.json", self._headers(credentials))
            for sub in held
            if sub.id.isdigit() and same_target(sub.url, webhook_url)
        ]


KIND: Final = Shopify()
