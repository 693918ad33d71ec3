"""A fake Tap API on loopback: charges, refunds, and the signed charge webhook it posts.

Written from Tap's documentation, independently of ``connectors/payments/tap.py``: bearer
auth with the secret key (401 otherwise), amounts in major units, ``reference.idempotent``
honoured (the same string answers the same charge), ``transaction.url`` for the hosted page.
``pay(charge_id)`` plays the customer paying: it POSTs the CAPTURED charge to the charge's
``post.url`` with the ``hashstring`` header (HMAC-SHA256 over the documented fields).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.gateways import listen

SECRET_KEY = "sk_test_tap_XKokBfNWv6FIYuTMg5sLPjhJ"
_DECIMALS = {"KWD": 3, "BHD": 3, "OMR": 3}


@dataclass
class TapCharge:
    id: str
    amount: Decimal
    currency: str
    post_url: str
    reference: dict[str, Any]
    metadata: dict[str, Any]
    status: str = "INITIATED"
    created: str = "1764745200000"


@dataclass
class FakeTap:
    secret_key: str = SECRET_KEY
    charges: dict[str, TapCharge] = field(default_factory=dict)
    idempotent: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    base_url: str = ""
    _fail: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v2/charges", self._create_charge)
        app.router.add_post("/v2/refunds", self._refund)
        self._runner, self.base_url = await listen(app, "127.0.0.1")
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail_next(self, status: int, times: int = 1) -> None:
        self._fail += [status] * times

    def _error(self, status: int, code: str, description: str) -> web.Response:
        errors = [{"code": code, "description": description}]
        return web.json_response({"errors": errors}, status=status)

    async def _guard(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path))
        if self._fail:
            return self._error(self._fail.pop(0), "5000", "Internal error")
        if request.headers.get("Authorization") != f"Bearer {self.secret_key}":
            return self._error(401, "2107", "Authentication required")
        return None

    async def _create_charge(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        body = await request.json()
        reference = dict(body.get("reference") or {})
        key = str(reference.get("idempotent") or "")
        if key and key in self.idempotent:
            return web.json_response(self._json(self.charges[self.idempotent[key]]))
        amount = body.get("amount")
        if not isinstance(amount, int | float) or amount <= 0:
            return self._error(400, "1117", "Amount is invalid")
        charge = TapCharge(
            id=f"chg_TS0{next(self._ids)}A1234567890",
            amount=Decimal(str(amount)),
            currency=str(body.get("currency")),
            post_url=str((body.get("post") or {}).get("url") or ""),
            reference={**reference, "gateway": "123456789", "payment": "0312345678"},
            metadata=dict(body.get("metadata") or {}),
        )
        self.charges[charge.id] = charge
        if key:
            self.idempotent[key] = charge.id
        return web.json_response(self._json(charge))

    def _json(self, c: TapCharge) -> dict[str, Any]:
        places = _DECIMALS.get(c.currency, 2)
        return {
            "id": c.id,
            "object": "charge",
            "live_mode": False,
            "status": c.status,
            "amount": float(round(c.amount, places)),
            "currency": c.currency,
            "reference": c.reference,
            "transaction": {
                "created": c.created,
                "url": f"https://checkout.beta.tap.company/?mode=page&token={c.id}",
            },
            "metadata": c.metadata,
            "post": {"status": "PENDING", "url": c.post_url},
        }

    async def _refund(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        body = await request.json()
        charge = self.charges.get(str(body.get("charge_id")))
        if charge is None or charge.status != "CAPTURED":
            return self._error(400, "1126", "Charge id is invalid")
        refund = {
            "id": f"re_TS0{next(self._ids)}",
            "object": "refund",
            "status": "PENDING",
            "amount": body.get("amount"),
            "currency": body.get("currency"),
            "charge_id": charge.id,
            "reference": body.get("reference") or {},
        }
        self.refunds[str(refund["id"])] = refund
        return web.json_response(refund)

    def hash_of(self, doc: dict[str, Any], key: str = "") -> str:
        places = _DECIMALS.get(str(doc["currency"]), 2)
        amount = f"{Decimal(str(doc['amount'])):.{places}f}"
        ref = doc["reference"]
        msg = (
            f"x_id{doc['id']}x_amount{amount}x_currency{doc['currency']}"
            f"x_gateway_reference{ref.get('gateway', '')}"
            f"x_payment_reference{ref.get('payment', '')}"
            f"x_status{doc['status']}x_created{doc['transaction']['created']}"
        )
        return hmac.new((key or self.secret_key).encode(), msg.encode(), hashlib.sha256).hexdigest()

    def event(self, charge_id: str, status: str = "CAPTURED") -> tuple[bytes, str]:
        """The webhook body and ``hashstring`` Tap would send once the charge is ``status``."""
        charge = self.charges[charge_id]
        charge.status = status
        doc = self._json(charge)
        return orjson.dumps(doc), self.hash_of(doc)

    def refund_event(
        self, charge_id: str, *, refund_id: str = "", amount: Decimal | None = None
    ) -> tuple[bytes, str]:
        """The webhook Tap sends once a refund completes: one asked for through the API
        (``refund_id``) or one made in Tap's dashboard (a new refund of ``amount``)."""
        charge = self.charges[charge_id]
        if refund_id:
            doc = dict(self.refunds[refund_id])
        else:
            refund_id = f"re_TS0{next(self._ids)}"
            doc = {
                "id": refund_id,
                "object": "refund",
                "amount": float(amount or charge.amount),
                "currency": charge.currency,
                "charge_id": charge.id,
            }
        doc["status"] = "REFUNDED"
        doc["reference"] = {**dict(doc.get("reference") or {}), **charge.reference}
        doc["transaction"] = {"created": charge.created}
        self.refunds[refund_id] = doc
        return orjson.dumps(doc), self.hash_of(doc)

    async def deliver(self, charge_id: str, body: bytes, hashstring: str) -> int:
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/json", "hashstring": hashstring}
            async with http.post(self.charges[charge_id].post_url, data=body, headers=headers) as r:
                await r.read()
                return r.status
