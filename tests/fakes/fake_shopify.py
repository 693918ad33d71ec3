"""A fake Shopify Admin REST API: ``products.json`` with ``limit`` ≤ 250 and opaque
``page_info`` cursors in the ``Link`` header (no other filter allowed with a cursor),
``X-Shopify-Access-Token`` checked (401 ``[API] Invalid API key or access token``),
``X-Shopify-Shop-Api-Call-Limit`` sent, 429 + ``Retry-After: 2.0`` when told, and webhooks:
``GET/POST webhooks.json`` (a second one for the same topic and address is 422 "for this
topic has already been taken"), ``DELETE webhooks/{id}.json``, and ``deliver`` posting to
each address subscribed to a topic with the ``X-Shopify-*`` headers and the body's HMAC with
the app's client secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.fake_store import FakeStore, Seen, answer, post

VERSION = "2024-10"
TOPICS = frozenset(
    {
        "app/uninstalled",
        "products/create",
        "products/update",
        "products/delete",
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/paid",
    }
)
_IDS = itertools.count(1047897000)


def shopify_product(n: int, price: float = 10.0) -> dict[str, Any]:
    return {
        "id": 7000000000 + n,
        "title": f"Product {n}",
        "body_html": f"<p>Description of product {n}</p>",
        "vendor": "Demo",
        "product_type": "General",
        "handle": f"product-{n}",
        "status": "active",
        "variants": [
            {
                "id": 4000000000 + n,
                "price": f"{price:.2f}",
                "sku": f"SH-{n}",
                "inventory_quantity": 3,
            }
        ],
        "image": {"src": f"https://cdn.shopify.com/{n}.jpg"},
    }


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f'{{"last_id":{offset}}}'.encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    return int(raw.split(":")[1].rstrip("}"))


@dataclass(slots=True)
class FakeShopify(FakeStore):
    access_token: str = "shpat_fake"
    retry_after: str = "2.0"
    client_secret: str = "shh"
    shop: str = "demo.myshopify.com"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/admin/api/{VERSION}/products.json", self._products)
        app.router.add_get(f"/admin/api/{VERSION}/webhooks.json", self._webhooks)
        app.router.add_post(f"/admin/api/{VERSION}/webhooks.json", self._subscribe)
        app.router.add_delete(f"/admin/api/{VERSION}/webhooks/{{webhook_id}}.json", self._delete)
        return app

    def _refused(self, request: web.Request, call: Seen) -> web.Response | None:
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return answer(
                call,
                401,
                {
                    "errors": "[API] Invalid API key or access token"
                    " (unrecognized login or wrong password)"
                },
            )
        if self.subscription_failure:
            return answer(call, self.subscription_failure, {"errors": "Internal Server Error"})
        return None

    async def _webhooks(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        limit = int(request.query.get("limit", "50"))
        return answer(call, 200, {"webhooks": self.subscriptions[:limit]})

    async def _subscribe(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        try:
            doc = await request.json()
        except ValueError:
            doc = None
        hook = doc.get("webhook") if isinstance(doc, dict) else None
        if not isinstance(hook, dict):
            return answer(call, 400, {"errors": {"webhook": "Required parameter missing"}})
        topic, address = hook.get("topic"), str(hook.get("address") or "")
        if topic not in TOPICS:
            return answer(
                call,
                422,
                {"errors": {"topic": ["Invalid topic specified. Topics allowed: ..."]}},
            )
        if not address.startswith(("https://", "http://")):
            return answer(call, 422, {"errors": {"address": ["is invalid"]}})
        if any((s["topic"], s["address"]) == (topic, address) for s in self.subscriptions):
            return answer(
                call, 422, {"errors": {"address": ["for this topic has already been taken"]}}
            )
        webhook = {
            "id": next(_IDS),
            "address": address,
            "topic": topic,
            "created_at": "2024-10-01T10:00:00-04:00",
            "updated_at": "2024-10-01T10:00:00-04:00",
            "format": hook.get("format") or "json",
            "fields": [],
            "metafield_namespaces": [],
            "api_version": VERSION,
            "private_metafield_namespaces": [],
        }
        self.subscriptions.append(webhook)
        return answer(call, 201, {"webhook": webhook})

    async def _delete(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        ident = request.match_info["webhook_id"]
        kept = [s for s in self.subscriptions if str(s["id"]) != ident]
        if len(kept) == len(self.subscriptions):
            return answer(call, 404, {"errors": "Not Found"})
        self.subscriptions = kept
        return answer(call, 200, {})

    async def deliver(self, topic: str, item: dict[str, Any]) -> list[tuple[int, str]]:
        """Shopify firing ``topic``: one POST per address subscribed to it."""
        outcomes = []
        body = json.dumps(item).encode()
        digest = hmac.new(self.client_secret.encode(), body, hashlib.sha256).digest()
        for sub in self.subscribed(topic):
            headers = {
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Shop-Domain": self.shop,
                "X-Shopify-API-Version": VERSION,
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            }
            outcomes.append(await post(str(sub["address"]), body, headers))
        return outcomes

    async def _products(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return answer(
                call,
                401,
                {
                    "errors": "[API] Invalid API key or access token"
                    " (unrecognized login or wrong password)"
                },
            )
        limit = int(request.query.get("limit", "50"))
        if limit > 250:
            return answer(call, 400, {"errors": {"limit": "must be less than or equal to 250"}})
        info = request.query.get("page_info")
        if info is not None and set(request.query) - {"limit", "page_info", "fields"}:
            return answer(call, 400, {"errors": {"page_info": "Invalid value."}})
        if await self.throttled():
            return answer(
                call,
                429,
                {
                    "errors": "Exceeded 2 calls per second for api client."
                    " Reduce request rates to resume uninterrupted service."
                },
                {"Retry-After": self.retry_after, "X-Shopify-Shop-Api-Call-Limit": "40/40"},
            )
        start = _offset(info) if info else 0
        items = self.products[start : start + limit]
        links = []
        base = f"{self.base_url}/admin/api/{VERSION}/products.json"
        if start > 0:
            prev = urlencode({"limit": limit, "page_info": _cursor(max(0, start - limit))})
            links.append(f'<{base}?{prev}>; rel="previous"')
        if start + limit < len(self.products):
            nxt = urlencode({"limit": limit, "page_info": _cursor(start + limit)})
            links.append(f'<{base}?{nxt}>; rel="next"')
        headers = {"X-Shopify-Shop-Api-Call-Limit": "1/40"}
        if links:
            headers["Link"] = ", ".join(links)
        return answer(call, 200, {"products": items}, headers)
