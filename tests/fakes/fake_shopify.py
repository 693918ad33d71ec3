"""A fake Shopify Admin REST API: ``products.json`` with ``limit`` ≤ 250 and opaque
``page_info`` cursors in the ``Link`` header (no other filter allowed with a cursor),
``X-Shopify-Access-Token`` checked (401 ``[API] Invalid API key or access token``),
``X-Shopify-Shop-Api-Call-Limit`` sent, and 429 + ``Retry-After: 2.0`` when told."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.fake_store import FakeStore, answer

VERSION = "2024-10"


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

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/admin/api/{VERSION}/products.json", self._products)
        return app

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
