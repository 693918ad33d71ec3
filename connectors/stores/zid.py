"""Zid (zid.sa): the Merchant API and its webhooks.

* Catalogue: ``GET {api_base}/v1/products/?page=N&page_size=50`` with two tokens,
  ``Authorization: Bearer <authorization>`` (the partner's) and ``Access-Token: <access_token>``
  (the store's); the answer is ``{"count", "next", "previous", "results": [...]}`` with names
  and descriptions as ``{ar, en}``. About 60 requests a minute; over it, 429 + ``Retry-After``.
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
    header,
    json_body,
    product_sku,
    read_rows,
    text_of,
)

API_BASE: Final = "https://api.zid.sa"
PAGE_SIZE: Final = 50

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


KIND: Final = Zid()
