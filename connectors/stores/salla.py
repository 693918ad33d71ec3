"""Salla (salla.sa): Merchant API v2 and its webhooks.

* Catalogue: ``GET {api_base}/admin/v2/products?page=N&per_page=60`` with a bearer token;
  the answer is ``{"data": [...], "pagination": {"currentPage", "totalPages", "total"}}``.
  The store's plan sets a leaky bucket; over it Salla answers 429 with ``Retry-After``.
* Tokens: access tokens expire (``expires_in``) and a refresh token is single-use, exchanged at
  ``POST {accounts_base}/oauth2/token`` (``grant_type=refresh_token``) for a new pair.
* Subscriptions: ``POST {api_base}/admin/v2/webhooks/subscribe`` ``{name, event, url, version,
  secret, headers}`` (the same URL and event again updates the one Salla holds: no duplicate),
  listed by ``GET /admin/v2/webhooks``, removed by ``DELETE /admin/v2/webhooks/unsubscribe?url=``
  (every subscription delivering to that URL). The Token strategy's headers ride along, so a
  delivery carries the secret even where Salla does not sign with it.
* Webhooks: ``{"event", "merchant", "created_at", "data"}``; the Signature strategy sends
  ``X-Salla-Signature`` = hex HMAC-SHA256 of the raw body with the webhook secret, the Token
  strategy sends the secret itself as ``Authorization: Bearer``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

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
    Tokens,
    header,
    json_body,
    product_sku,
    read_rows,
    subscription_list,
    text_of,
)

API_BASE: Final = "https://api.salla.dev"
WEBHOOK_VERSION: Final = 2
# The store events we apply; app events (app.uninstalled) reach the app's own Partner-portal
# webhook, not a merchant subscription.
TOPICS: Final = (
    "product.created",
    "product.updated",
    "product.deleted",
    "order.created",
    "order.updated",
    "order.status.updated",
)
ACCOUNTS_BASE: Final = "https://accounts.salla.sa"
PER_PAGE: Final = 60

# Salla's order status slugs, in our order status words (the platform's own word is kept too).
_STATUS: Final = {
    "payment_pending": "new",
    "under_review": "new",
    "in_progress": "confirmed",
    "completed": "delivered",
    "delivering": "shipped",
    "delivered": "delivered",
    "shipped": "shipped",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "restored": "cancelled",
}


def product_row(item: Mapping[str, Any]) -> dict[str, Any]:
    price = item.get("price")
    amount = price.get("amount") if isinstance(price, Mapping) else price
    currency = price.get("currency") if isinstance(price, Mapping) else item.get("currency")
    image = item.get("main_image") or ""
    categories = item.get("categories") or []
    category = (
        text_of(categories[0].get("name"))
        if categories and isinstance(categories[0], Mapping)
        else None
    )
    quantity = item.get("quantity")
    unlimited = bool(item.get("unlimited_quantity"))
    return {
        "sku": product_sku("salla", item["id"]),
        "title": text_of(item.get("name")),
        "description": text_of(item.get("description")),
        "price": amount,
        "currency": currency or None,
        "category": category or None,
        "url": item.get("url") or None,
        "image_url": image or None,
        "in_stock": unlimited or not isinstance(quantity, int) or quantity > 0,
    }


def order_row(item: Mapping[str, Any]) -> dict[str, Any]:
    status = item.get("status") or {}
    slug = str(status.get("slug") or "") if isinstance(status, Mapping) else str(status)
    customer = item.get("customer") or {}
    amounts = item.get("amounts") or {}
    total = amounts.get("total") if isinstance(amounts, Mapping) else None
    mobile = customer.get("mobile") if isinstance(customer, Mapping) else None
    code = customer.get("mobile_code") if isinstance(customer, Mapping) else None
    phone = f"{code or ''}{mobile or ''}".strip()
    return {
        "platform_id": str(item["id"]),
        "number": str(item.get("reference_id") or item["id"]),
        "platform_status": (text_of(status.get("name")) if isinstance(status, Mapping) else slug)
        or slug,
        "status": _STATUS.get(slug, "confirmed"),
        "phone": phone,
        "total": total.get("amount") if isinstance(total, Mapping) else total,
        "currency": total.get("currency") if isinstance(total, Mapping) else None,
    }


class Salla(StoreKind):
    kind = "salla"
    api_hosts = ("api.salla.dev",)
    required = ("access_token", "webhook_secret")
    optional = ("refresh_token",)
    page_size = PER_PAGE
    refreshes_tokens = True

    def default_api_base(self, credentials: Mapping[str, str]) -> str:
        return API_BASE

    def page_request(
        self, api_base: str, credentials: Mapping[str, str], cursor: str | None
    ) -> StoreRequest:
        query = urlencode({"page": cursor or "1", "per_page": PER_PAGE})
        return StoreRequest(
            "GET",
            f"{api_base.rstrip('/')}/admin/v2/products?{query}",
            {
                "Authorization": f"Bearer {credentials['access_token']}",
                "Accept": "application/json",
            },
        )

    def parse_page(self, response: StoreResponse) -> StorePage:
        doc = json_body(response.body)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
            raise MalformedStorePayload("no data list")
        pagination = doc.get("pagination") or {}
        try:
            current = int(pagination.get("currentPage") or 1)
            pages = int(pagination.get("totalPages") or current)
        except (TypeError, ValueError):
            raise MalformedStorePayload("bad pagination") from None
        rows, skipped = read_rows(doc["data"], product_row)
        total = pagination.get("total")
        return StorePage(
            rows,
            str(current + 1) if current < pages else None,
            total if isinstance(total, int) else None,
            skipped,
        )

    def pause_after(self, headers: Mapping[str, str], now: float) -> float:
        """Salla's bucket: ``X-RateLimit-Remaining`` and the epoch second it refills at."""
        try:
            remaining = int(header(headers, "X-RateLimit-Remaining") or "1")
            reset = float(header(headers, "X-RateLimit-Reset") or "0")
        except ValueError:
            return 0.0
        return max(0.0, reset - now) if remaining <= 0 else 0.0

    def verify(
        self, credentials: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> bool:
        secret = credentials.get("webhook_secret", "")
        if not secret:
            return False
        strategy = header(headers, "X-Salla-Security-Strategy").lower() or "signature"
        if strategy == "token":
            auth = header(headers, "Authorization")
            token = auth[7:] if auth.lower().startswith("bearer ") else auth
            return bool(token) and hmac.compare_digest(token.encode(), secret.encode())
        given = header(headers, "X-Salla-Signature").strip().lower()
        wanted = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return bool(given) and hmac.compare_digest(given.encode(), wanted.encode())

    def parse_event(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes
    ) -> StoreEvent:
        doc = json_body(body)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("event"), str):
            raise MalformedStorePayload("no event")
        event = str(doc["event"])
        raw = doc.get("data")
        data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        # Salla sends no delivery id: a redelivery is the same body, so its digest names it.
        event_id = hashlib.sha256(body).hexdigest()
        try:
            if event in ("product.created", "product.updated"):
                return StoreEvent(event_id, PRODUCT_UPSERT, product=product_row(data))
            if event == "product.deleted":
                return StoreEvent(event_id, PRODUCT_DELETE, sku=product_sku("salla", data["id"]))
            if event.startswith("order."):
                return StoreEvent(event_id, ORDER, order=order_row(data))
        except (KeyError, TypeError, AttributeError):
            raise MalformedStorePayload("event data is incomplete") from None
        if event == "app.uninstalled":
            return StoreEvent(event_id, UNINSTALLED)
        return StoreEvent(event_id, IGNORED)

    def refresh_request(
        self, accounts_base: str, credentials: Mapping[str, str], client: Mapping[str, str]
    ) -> StoreRequest | None:
        refresh = credentials.get("refresh_token", "")
        if not refresh:
            return None
        return StoreRequest(
            "POST",
            f"{accounts_base.rstrip('/')}/oauth2/token",
            {"Accept": "application/json"},
            form={
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": client.get("client_id", ""),
                "client_secret": client.get("client_secret", ""),
            },
        )

    def parse_tokens(self, response: StoreResponse, now: float) -> Tokens:
        doc = json_body(response.body)
        if not isinstance(doc, Mapping):
            raise MalformedStorePayload("no token object")
        try:
            return Tokens(
                str(doc["access_token"]),
                str(doc["refresh_token"]),
                now + float(doc.get("expires_in") or 0),
            )
        except (KeyError, TypeError, ValueError):
            raise MalformedStorePayload("token answer is incomplete") from None

    # -- webhook subscriptions ------------------------------------------------------------------
    webhook_topics = TOPICS

    def _headers(self, credentials: Mapping[str, str]) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {credentials['access_token']}",
            "Accept": "application/json",
        }

    def subscriptions_request(self, api_base: str, credentials: Mapping[str, str]) -> StoreRequest:
        return StoreRequest(
            "GET", f"{api_base.rstrip('/')}/admin/v2/webhooks", self._headers(credentials)
        )

    def parse_subscriptions(self, response: StoreResponse) -> list[Subscription]:
        return subscription_list(response.body, "data", "event", "url")

    def subscribe_request(
        self, api_base: str, credentials: Mapping[str, str], topic: str, target: str
    ) -> StoreRequest:
        secret = credentials["webhook_secret"]
        return StoreRequest(
            "POST",
            f"{api_base.rstrip('/')}/admin/v2/webhooks/subscribe",
            {**self._headers(credentials), "Content-Type": "application/json"},
            json={
                "name": f"Kaleem {topic}",
                "event": topic,
                "url": target,
                "version": WEBHOOK_VERSION,
                "secret": secret,
                "headers": [
                    {"key": "Authorization", "value": f"Bearer {secret}"},
                    {"key": "X-Salla-Security-Strategy", "value": "Token"},
                ],
            },
        )

    def unsubscribe_requests(
        self,
        api_base: str,
        credentials: Mapping[str, str],
        webhook_url: str,
        held: list[Subscription],
    ) -> list[StoreRequest]:
        """One call: Salla removes every subscription delivering to the URL."""
        query = urlencode({"url": webhook_url})
        return [
            StoreRequest(
                "DELETE",
                f"{api_base.rstrip('/')}/admin/v2/webhooks/unsubscribe?{query}",
                self._headers(credentials),
            )
        ]


KIND: Final = Salla()
