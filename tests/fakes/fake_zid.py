"""A fake Zid: ``GET /v1/products/`` with ``page``/``page_size``, ``{count, next, previous,
results}`` (absolute ``next`` links), names as ``{ar, en}``, both tokens required
(``Authorization: Bearer`` and ``Access-Token``), 429 + ``Retry-After`` when told."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.fake_store import FakeStore, answer


def zid_product(n: int, price: float = 10.0) -> dict[str, Any]:
    return {
        "id": f"6f1e{n:06d}",
        "sku": f"Z-{n}",
        "name": {"ar": f"منتج {n}", "en": f"Product {n}"},
        "description": {"ar": "", "en": f"Description of product {n}"},
        "price": price,
        "sale_price": None,
        "currency": "SAR",
        "quantity": 7,
        "is_infinite": False,
        "html_url": f"https://demo.zid.store/products/{n}",
        "images": [{"image": {"full_size": f"https://media.zid.store/{n}.jpg"}}],
    }


@dataclass(slots=True)
class FakeZid(FakeStore):
    authorization: str = "zid-partner-token"
    access_token: str = "zid-store-token"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/products/", self._products)
        return app

    async def _products(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (
            request.headers.get("Authorization") != f"Bearer {self.authorization}"
            or request.headers.get("Access-Token") != self.access_token
        ):
            return answer(
                call,
                401,
                {
                    "status": "error",
                    "message": {
                        "type": "error",
                        "code": 401,
                        "name": "unauthenticated",
                        "description": "Unauthenticated.",
                    },
                },
            )
        if await self.throttled():
            return answer(
                call,
                429,
                {"message": "Too Many Attempts."},
                {
                    "Retry-After": self.retry_after,
                    "X-RateLimit-Limit": "60",
                    "X-RateLimit-Remaining": "0",
                },
            )
        size = int(request.query.get("page_size", "10"))
        page = int(request.query.get("page", "1"))
        pages = max(1, math.ceil(len(self.products) / size))

        def link(n: int) -> str | None:
            if not 1 <= n <= pages:
                return None
            return f"{self.base_url}/v1/products/?{urlencode({'page': n, 'page_size': size})}"

        return answer(
            call,
            200,
            {
                "count": len(self.products),
                "next": link(page + 1),
                "previous": link(page - 1),
                "results": self.products[(page - 1) * size : page * size],
            },
            {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59"},
        )
