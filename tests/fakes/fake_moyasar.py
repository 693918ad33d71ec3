"""A fake Moyasar API on loopback: invoices, refunds, and the dashboard webhook it sends.

Written from Moyasar's documentation, independently of ``connectors/payments/moyasar.py``:
HTTP Basic auth with the secret key as the user (401 ``authentication_error`` otherwise),
amounts in halalas (400 ``invalid_request_error`` below 100), invoices answered with an
``id`` and a checkout ``url``. ``pay(invoice_id)`` plays the customer paying: it POSTs a
``payment_paid`` event carrying the configured ``secret_token`` to the webhook endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.gateways import listen

SECRET_KEY = "sk_test_moyasar_0123456789"
WEBHOOK_SECRET = "moyasar-webhook-token-123"


@dataclass
class Invoice:
    id: str
    amount: int
    currency: str
    description: str
    metadata: dict[str, Any]
    status: str = "initiated"
    payment_id: str = ""
    refunded: int = 0


@dataclass
class FakeMoyasar:
    secret_key: str = SECRET_KEY
    webhook_secret: str = WEBHOOK_SECRET
    webhook_url: str = ""  # what the merchant typed into Moyasar's dashboard
    invoices: dict[str, Invoice] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    base_url: str = ""
    delay_s: float = 0.0  # how long an invoice creation takes (to overlap two requests)
    _fail: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/invoices", self._create_invoice)
        app.router.add_post("/v1/payments/{id}/refund", self._refund)
        self._runner, self.base_url = await listen(app, "127.0.0.1")
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, status: int, times: int = 1) -> None:
        self._fail += [status] * times

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except ValueError:
            return False
        return user == self.secret_key

    def _error(self, status: int, kind: str, message: str) -> web.Response:
        return web.json_response({"type": kind, "message": message, "errors": None}, status=status)

    async def _guard(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path))
        if self._fail:
            status = self._fail.pop(0)
            return self._error(status, "api_error", "Internal server error")
        if not self._authorized(request):
            return self._error(401, "authentication_error", "Invalid authorization credentials")
        return None

    async def _create_invoice(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        body = await request.json()
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 100 or not body.get("description"):
            return self._error(400, "invalid_request_error", "Validation Failed")
        inv = Invoice(
            id=str(uuid.uuid4()),
            amount=amount,
            currency=str(body.get("currency") or "SAR"),
            description=str(body["description"]),
            metadata=dict(body.get("metadata") or {}),
        )
        self.invoices[inv.id] = inv
        return web.json_response(self._invoice_json(inv), status=201)

    def _invoice_json(self, inv: Invoice) -> dict[str, Any]:
        return {
            "id": inv.id,
            "status": inv.status,
            "amount": inv.amount,
            "currency": inv.currency,
            "description": inv.description,
            "amount_format": f"{inv.amount / 100:.2f} {inv.currency}",
            "url": f"https://checkout.moyasar.com/invoices/{inv.id}?lang=en",
            "metadata": inv.metadata,
            "payment_id": inv.payment_id or None,
        }

    async def _refund(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        pid = request.match_info["id"]
        inv = next((i for i in self.invoices.values() if i.payment_id == pid), None)
        if inv is None:
            return self._error(404, "record_not_found", "Object not found")
        body = await request.json()
        amount = int(body.get("amount") or inv.amount - inv.refunded)
        if amount <= 0 or inv.refunded + amount > inv.amount:
            return self._error(400, "invalid_request_error", "Amount exceeds payment")
        inv.refunded += amount
        status = "refunded" if inv.refunded == inv.amount else "paid"
        return web.json_response(self._payment_json(inv, status))

    def _payment_json(self, inv: Invoice, status: str) -> dict[str, Any]:
        return {
            "id": inv.payment_id,
            "status": status,
            "amount": inv.amount,
            "fee": inv.amount * 2 // 100,
            "currency": inv.currency,
            "refunded": inv.refunded,
            "invoice_id": inv.id,
            "metadata": inv.metadata,
            "source": {"type": "creditcard", "company": "mada"},
        }

    def dashboard_refund(self, invoice_id: str, amount: int) -> None:
        """A refund the merchant makes in Moyasar's dashboard (the API never hears of it)."""
        inv = self.invoices[invoice_id]
        inv.refunded = min(inv.amount, inv.refunded + amount)

    def event(self, invoice_id: str, kind: str = "payment_paid", token: str = "") -> bytes:
        """The webhook body Moyasar would send for this invoice (its event id is fresh)."""
        inv = self.invoices[invoice_id]
        if kind == "payment_paid":
            inv.status = "paid"
            inv.payment_id = inv.payment_id or str(uuid.uuid4())
        status = {"payment_paid": "paid", "payment_failed": "failed"}.get(kind, "refunded")
        return orjson.dumps(
            {
                "id": str(uuid.uuid4()),
                "type": kind,
                "created_at": "2026-12-03T07:00:00.000Z",
                "secret_token": token or self.webhook_secret,
                "account_name": "Test Shop",
                "live": False,
                "data": self._payment_json(inv, status),
            }
        )

    async def deliver(self, body: bytes) -> int:
        """POST one webhook body to the dashboard's endpoint; the HTTP status it got."""
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/json"}
            async with http.post(self.webhook_url, data=body, headers=headers) as r:
                await r.read()
                return r.status
