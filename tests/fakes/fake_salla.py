"""A fake Salla: Merchant API v2 products (``page``/``per_page`` ≤ 60, ``pagination``), 401 on
a wrong bearer token, 429 + ``Retry-After`` when told, the accounts server's
``POST /oauth2/token`` whose refresh tokens work once (a spent one is ``invalid_grant``), and
webhooks: ``GET /admin/v2/webhooks``, ``POST /admin/v2/webhooks/subscribe`` (the same URL and
event again updates the held one), ``DELETE /admin/v2/webhooks/unsubscribe?url=|id=``, and
``deliver`` posting an event to the subscribed URLs with the headers they were given and the
``X-Salla-Signature`` of the subscription's secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_store import FakeStore, Seen, answer, post

# The store events a merchant subscription may name (a part of Salla's list).
EVENTS = frozenset(
    {
        "product.created",
        "product.updated",
        "product.deleted",
        "product.available",
        "order.created",
        "order.updated",
        "order.status.updated",
        "order.cancelled",
        "customer.created",
        "customer.updated",
    }
)


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
        app.router.add_get("/admin/v2/webhooks", self._webhooks)
        app.router.add_post("/admin/v2/webhooks/subscribe", self._subscribe)
        app.router.add_delete("/admin/v2/webhooks/unsubscribe", self._unsubscribe)
        return app

    def _refused(self, request: web.Request, call: Seen) -> web.Response | None:
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
        if self.subscription_failure:
            status = self.subscription_failure
            return answer(
                call,
                status,
                {"status": status, "success": False, "error": {"code": "error", "message": "x"}},
            )
        return None

    async def _webhooks(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        return answer(
            call,
            200,
            {
                "status": 200,
                "success": True,
                "data": [{k: v for k, v in s.items() if k != "secret"} for s in self.subscriptions],
                "pagination": {
                    "count": len(self.subscriptions),
                    "total": len(self.subscriptions),
                    "perPage": 65,
                    "currentPage": 1,
                    "totalPages": 1,
                    "links": {},
                },
            },
        )

    async def _subscribe(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        try:
            doc = await request.json()
        except ValueError:
            doc = None
        fields: dict[str, list[str]] = {}
        if not isinstance(doc, dict) or doc.get("event") not in EVENTS:
            fields["event"] = ["The selected event is invalid."]
        if not isinstance(doc, dict) or not str(doc.get("url") or "").startswith("http"):
            fields["url"] = ["The url must be a valid URL."]
        if fields or not isinstance(doc, dict):
            return answer(
                call,
                422,
                {
                    "status": 422,
                    "success": False,
                    "error": {"code": "error", "message": "alert.invalid_fields", "fields": fields},
                },
            )
        headers = {
            str(h.get("key")): str(h.get("value"))
            for h in doc.get("headers") or []
            if isinstance(h, dict)
        }
        held = next(
            (s for s in self.subscriptions if (s["event"], s["url"]) == (doc["event"], doc["url"])),
            None,
        )
        if held is None:
            held = {"id": 60587520 + len(self.subscriptions), "type": "manual"}
            self.subscriptions.append(held)
        held.update(
            {
                "name": doc.get("name") or doc["event"],
                "event": doc["event"],
                "url": doc["url"],
                "version": doc.get("version") or 2,
                "rule": doc.get("rule"),
                "headers": headers,
                "secret": doc.get("secret"),
            }
        )
        shown = {k: v for k, v in held.items() if k != "secret"}
        return answer(call, 201, {"status": 201, "success": True, "data": shown})

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        url, ident = request.query.get("url"), request.query.get("id")
        if not url and not ident:
            return answer(
                call,
                422,
                {
                    "status": 422,
                    "success": False,
                    "error": {"code": "error", "message": "The id or url is required"},
                },
            )
        self.subscriptions = [
            s for s in self.subscriptions if not (s["url"] == url or str(s["id"]) == ident)
        ]
        return answer(
            call,
            202,
            {
                "status": 202,
                "success": True,
                "data": {"message": "The webhook has been deactivated", "code": 202},
            },
        )

    async def deliver(self, event: str, data: dict[str, Any]) -> list[tuple[int, str]]:
        """Salla firing ``event``: one POST per subscription to it, each with the headers it
        was registered with and, when it has a secret, the body's signature."""
        outcomes = []
        for sub in self.subscribed(event):
            body = json.dumps(
                {"event": event, "merchant": 1305814, "created_at": time.time(), "data": data}
            ).encode()
            headers = dict(sub.get("headers") or {})
            if sub.get("secret"):
                key = str(sub["secret"]).encode()
                headers["X-Salla-Signature"] = hmac.new(key, body, hashlib.sha256).hexdigest()
            outcomes.append(await post(str(sub["url"]), body, headers))
        return outcomes

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
