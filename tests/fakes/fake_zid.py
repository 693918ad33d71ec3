"""A fake Zid: ``GET /v1/products/`` with ``page``/``page_size``, ``{count, next, previous,
results}`` (absolute ``next`` links), names as ``{ar, en}``, both tokens required
(``Authorization: Bearer`` and ``Access-Token``), 429 + ``Retry-After`` when told, and the
manager webhooks: ``GET/POST /v1/managers/webhooks`` and ``DELETE /v1/managers/webhooks/{id}``
(the partner token and ``X-Manager-Token``; Zid keeps a second identical subscription, so
listing first is the caller's job), with ``deliver`` posting a record to every target URL
subscribed to an event, its user info sent as the Basic credentials."""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from tests.fakes.fake_store import FakeStore, Seen, answer, post

EVENTS = frozenset(
    {
        "product.create",
        "product.update",
        "product.delete",
        "product.publish",
        "order.create",
        "order.status.update",
        "order.payment_status.update",
        "customer.create",
    }
)
_UNAUTHENTICATED = {
    "status": "error",
    "message": {
        "type": "error",
        "code": 401,
        "name": "unauthenticated",
        "description": "Unauthenticated.",
    },
}


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
        app.router.add_get("/v1/managers/webhooks", self._webhooks)
        app.router.add_post("/v1/managers/webhooks", self._subscribe)
        app.router.add_delete("/v1/managers/webhooks/{webhook_id}", self._unsubscribe)
        return app

    def _refused(self, request: web.Request, call: Seen) -> web.Response | None:
        if (
            request.headers.get("Authorization") != f"Bearer {self.authorization}"
            or request.headers.get("X-Manager-Token") != self.access_token
        ):
            return answer(call, 401, _UNAUTHENTICATED)
        if self.subscription_failure:
            return answer(
                call,
                self.subscription_failure,
                {"status": "error", "message": {"type": "error", "code": 500, "name": "error"}},
            )
        return None

    async def _webhooks(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        return answer(call, 200, {"status": "object", "webhooks": self.subscriptions})

    async def _subscribe(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        try:
            doc = await request.json()
        except ValueError:
            doc = None
        errors: dict[str, list[str]] = {}
        if not isinstance(doc, dict) or doc.get("event") not in EVENTS:
            errors["event"] = ["The selected event is invalid."]
        if not isinstance(doc, dict) or not str(doc.get("target_url") or "").startswith("http"):
            errors["target_url"] = ["The target url format is invalid."]
        if not isinstance(doc, dict) or not doc.get("subscriber"):
            errors["subscriber"] = ["The subscriber field is required."]
        if not isinstance(doc, dict) or not isinstance(doc.get("original_id"), int):
            errors["original_id"] = ["The original id must be an integer."]
        if errors or not isinstance(doc, dict):
            return answer(
                call,
                422,
                {
                    "status": "error",
                    "message": {
                        "type": "error",
                        "code": 422,
                        "name": "validation_error",
                        "description": "The given data was invalid.",
                        "fields": errors,
                    },
                },
            )
        webhook = {
            "id": str(uuid.uuid4()),
            "event": doc["event"],
            "target_url": doc["target_url"],
            "original_id": doc["original_id"],
            "subscriber": doc["subscriber"],
            "conditions": doc.get("conditions"),
            "store_id": "b2a5c1f0-0000-4000-8000-000000000001",
            "status": "ready",
            "active": True,
        }
        self.subscriptions.append(webhook)
        return answer(call, 200, {"status": "object", "webhook": webhook})

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        call = self.seen(request)
        if (refused := self._refused(request, call)) is not None:
            return refused
        ident = request.match_info["webhook_id"]
        kept = [s for s in self.subscriptions if s["id"] != ident]
        if len(kept) == len(self.subscriptions):
            return answer(
                call,
                404,
                {
                    "status": "error",
                    "message": {"type": "error", "code": 404, "name": "not_found"},
                },
            )
        self.subscriptions = kept
        return answer(
            call,
            200,
            {"status": "object", "message": {"type": "success", "name": "webhook_deleted"}},
        )

    async def deliver(self, event: str, record: dict[str, Any]) -> list[tuple[int, str]]:
        """Zid firing ``event``: the record itself posted to each subscribed target URL, the
        URL's user info as ``Authorization: Basic``."""
        outcomes = []
        body = json.dumps(record).encode()
        for sub in self.subscribed(event):
            parts = urlsplit(str(sub["target_url"]))
            headers: dict[str, str] = {}
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
            outcomes.append(await post(url, body, headers))
        return outcomes

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
