"""A fake Salla: Merchant API v2 products (``page``/``per_page`` ≤ 60, ``pagination``), 401 on
a wrong bearer token, 429 + ``Retry-After`` when told, and the accounts server's
``POST /oauth2/token`` whose refresh tokens work once (a spent one is ``invalid_grant``)."""

from __future__ import annotations

import asyncio
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_store import FakeStore, answer


def salla_product(n: int, price: float = 10.0) -> dict[str, Any]:
    return {
        "id": 100000 + n,
        "name": f"Product {n}",
        "description": f"Description of product {n}",
        "price": {"amount": price, "currency": "SAR"},
        "sku": f"S-{n}",
        "url": f"https://demo.salla.sa/p{n}",
        "main_image": f"https://cdn.salla.sa/{n}.jpg",
        "quantity": 5,
        "status": "sale",
        "categories": [{"id": 1, "name": "General"}],
    }


@dataclass(slots=True)
class FakeSalla(FakeStore):
    access_token: str = "salla-access-0"
    refresh_token: str = "salla-refresh-0"
    client_id: str = "client-id"
    client_secret: str = "client-secret"
    refreshes: int = 0
    spent: set[str] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/admin/v2/products", self._products)
        app.router.add_post("/oauth2/token", self._token)
        return app

    async def _products(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return answer(
                call,
                401,
                {
                    "status": 401,
                    "success": False,
                    "error": {"code": "Unauthorized", "message": "The access token is invalid"},
                },
            )
        per_page = int(request.query.get("per_page", "15"))
        page = int(request.query.get("page", "1"))
        if per_page > 60:
            return answer(
                call,
                422,
                {
                    "status": 422,
                    "success": False,
                    "error": {"code": "error", "message": "per_page must not exceed 60"},
                },
            )
        if await self.throttled():
            return answer(
                call,
                429,
                {"status": 429, "success": False, "error": {"code": "Too Many Requests"}},
                {"Retry-After": self.retry_after, "X-RateLimit-Remaining": "0"},
            )
        pages = max(1, math.ceil(len(self.products) / per_page))
        data = self.products[(page - 1) * per_page : page * per_page]
        return answer(
            call,
            200,
            {
                "status": 200,
                "success": True,
                "data": data,
                "pagination": {
                    "count": len(data),
                    "total": len(self.products),
                    "perPage": per_page,
                    "currentPage": page,
                    "totalPages": pages,
                    "links": {},
                },
            },
            {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "119"},
        )

    async def _token(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        form = await request.post()
        await asyncio.sleep(0.05)  # long enough for a second caller to arrive meanwhile
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return answer(call, 401, {"error": "invalid_client"})
        token = str(form.get("refresh_token") or "")
        if token != self.refresh_token or token in self.spent:
            return answer(
                call,
                400,
                {"error": "invalid_grant", "error_description": "The refresh token is invalid."},
            )
        self.spent.add(token)
        self.refreshes += 1
        self.access_token = f"salla-access-{secrets.token_hex(4)}"
        self.refresh_token = f"salla-refresh-{secrets.token_hex(4)}"
        return answer(
            call,
            200,
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": 1209600,
                "token_type": "bearer",
                "scope": "offline_access products.read",
            },
        )
