"""The merchant admin API over real HTTP on the session engine (real Redis, Ray, stores)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.http.keys import DEPS
from tests.conftest import Engine

pytestmark = pytest.mark.integration


@dataclass
class Tenant:
    merchant_id: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> access token
    refresh: str = ""
    api_key: str = ""


async def call(
    engine: Engine,
    method: str,
    path: str,
    token: str | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    async with engine.session.request(method, engine.base_url + path, json=json, headers=h) as r:
        text = await r.text()
        body: Any = None
        if text and r.content_type.endswith("json"):
            body = await r.json(content_type=None)
        return r.status, body, dict(r.headers)


async def dead_letter_of(engine: Engine, merchant_id: str) -> str:
    """A dead letter of this merchant, written as the delivery side does; its entry id."""
    from engine.adapters.redis.queues import Outbox
    from engine.domain.messages import OutboundReply

    outbox = Outbox(engine.runtime.runner.app[DEPS].redis)
    reply = OutboundReply(
        outbox_id=f"r-{secrets.token_hex(6)}",
        merchant_id=merchant_id,
        channel_id="webchat",
        channel_kind="webchat",
        customer_id="dl-cust",
        text="x",
        intent="greeting",
        handoff=False,
        in_reply_to=(),
        received_at=0.0,
    )
    await outbox.dead_letter(reply, "test", 1)
    items = await outbox.dead_letters(merchant_id, 50)
    return str(next(i["id"] for i in items if i["reply"]["outbox_id"] == reply.outbox_id))


async def seed_conversation(engine: Engine, merchant_id: str, customer: str) -> str:
    """Record a customer turn exactly as the conversation host does (Records.record_message)."""
    import time

    from engine.adapters.records import conversation_id

    records = engine.runtime.records
    key = f"{merchant_id}:playground:{customer}"
    now = time.time() - 10  # in the past: later agent replies must not count as first replies
    await records.record_message(
        merchant_id,
        {
            "_id": f"in:pg:{customer}",
            "conversation_key": key,
            "direction": "in",
            "text": "do you have mugs?",
            "at": now,
        },
    )
    await records.record_message(
        merchant_id,
        {
            "_id": f"out:pg:{customer}",
            "conversation_key": key,
            "direction": "out",
            "text": "Here are our mugs",
            "intent": "product_search",
            "products": [{"sku": "m1"}],
            "handoff": False,
            "at": now + 0.4,
        },
    )
    return conversation_id(key)


async def make_tenant(engine: Engine, name: str) -> Tenant:
    email = f"owner-{secrets.token_hex(4)}@example.com"
    status, body, _ = await call(
        engine,
        "POST",
        "/api/v1/auth/signup",
        json={"merchant_name": name, "email": email, "password": "correct horse 1"},
    )
    assert status == 201, body
    tenant = Tenant(body["merchant_id"], {"owner": body["access_token"]}, body["refresh_token"])
    for role in ("admin", "agent", "viewer"):
        status, inv, _ = await call(
            engine,
            "POST",
            "/api/v1/users",
            tenant.tokens["owner"],
            {"email": f"{role}-{secrets.token_hex(4)}@example.com", "role": role},
        )
        assert status == 201, inv
        status, toks, _ = await call(
            engine,
            "POST",
            "/api/v1/auth/accept-invite",
            json={"invite_token": inv["invite_token"], "password": "another pass 2"},
        )
        assert status == 200, toks
        tenant.tokens[role] = toks["access_token"]
    status, key, _ = await call(
        engine, "POST", "/api/v1/api-keys", tenant.tokens["owner"], {"name": "server"}
    )
    assert status == 201, key
    tenant.api_key = key["api_key"]
    return tenant


@pytest.fixture(scope="module")
async def tenants(engine: Engine) -> tuple[Tenant, Tenant]:
    return await make_tenant(engine, "Shop A"), await make_tenant(engine, "Shop B")


async def test_signup_login_refresh_rotation_and_reuse(engine: Engine) -> None:
    email = f"u-{secrets.token_hex(4)}@example.com"
    status, body, _ = await call(
        engine,
        "POST",
        "/api/v1/auth/signup",
        json={"merchant_name": "Rot", "email": email, "password": "s3cret-pass"},
    )
    assert status == 201 and body["merchant_id"].startswith("m_")
    status, me, _ = await call(engine, "GET", "/api/v1/auth/me", body["access_token"])
    assert status == 200 and me["email"] == email and me["role"] == "owner"

    status, bad, _ = await call(
        engine, "POST", "/api/v1/auth/login", json={"email": email, "password": "wrong-one"}
    )
    assert status == 401 and bad["title"] == "Unauthorized"
    status, login, _ = await call(
        engine, "POST", "/api/v1/auth/login", json={"email": email, "password": "s3cret-pass"}
    )
    assert status == 200 and login["access_token"] and login["refresh_token"]

    status, rotated, _ = await call(
        engine, "POST", "/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert status == 200 and rotated["refresh_token"] != login["refresh_token"]
    # Reuse of the rotated token revokes the whole family: the new pair stops working too.
    status, _, _ = await call(
        engine, "POST", "/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert status == 401
    status, _, _ = await call(
        engine, "POST", "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
    )
    assert status == 401
    status, _, _ = await call(engine, "GET", "/api/v1/auth/me", rotated["access_token"])
    assert status == 401

    # Logout blacklists the access token.
    token = body["access_token"]
    status, _, _ = await call(engine, "POST", "/api/v1/auth/logout", token, {})
    assert status == 204
    status, _, _ = await call(engine, "GET", "/api/v1/auth/me", token)
    assert status == 401


async def test_login_is_throttled_per_account(engine: Engine) -> None:
    email = f"t-{secrets.token_hex(4)}@example.com"
    await call(
        engine,
        "POST",
        "/api/v1/auth/signup",
        json={"merchant_name": "T", "email": email, "password": "right-password"},
    )
    statuses = []
    for _ in range(7):
        status, _, headers = await call(
            engine, "POST", "/api/v1/auth/login", json={"email": email, "password": "nope-nope"}
        )
        statuses.append(status)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    # Even the right password waits now, and the client is told how long.
    status, _, headers = await call(
        engine, "POST", "/api/v1/auth/login", json={"email": email, "password": "right-password"}
    )
    assert status == 429 and int(headers["Retry-After"]) > 0


async def test_rbac_viewer_reads_agent_converses_admin_writes(
    engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    product = {"sku": f"rb-{secrets.token_hex(3)}", "title": "Blue mug", "price": 12.5}
    status, body, _ = await call(engine, "POST", "/api/v1/products", a.tokens["viewer"], product)
    assert status == 403 and body["status"] == 403
    status, _, _ = await call(engine, "POST", "/api/v1/products", a.tokens["agent"], product)
    assert status == 403
    status, created, _ = await call(engine, "POST", "/api/v1/products", a.tokens["admin"], product)
    assert status == 201 and created["id"] == product["sku"] and created["price"] == 12.5
    status, got, _ = await call(
        engine, "GET", f"/api/v1/products/{product['sku']}", a.tokens["viewer"]
    )
    assert status == 200 and got["title"] == "Blue mug"
    # Agents cannot change channels (spine route, now role-aware for user tokens).
    status, _, _ = await call(
        engine,
        "POST",
        "/api/v1/channels",
        a.tokens["agent"],
        {"kind": "telegram", "bot_token": "1:x", "secret_token": "abc"},
    )
    assert status == 403
    # An admin cannot mint an owner; the owner can see the audit trail of it all.
    status, _, _ = await call(
        engine, "POST", "/api/v1/users", a.tokens["admin"], {"email": "x@y.co", "role": "owner"}
    )
    assert status == 403
    status, audit, _ = await call(engine, "GET", "/api/v1/audit?limit=100", a.tokens["owner"])
    actions = {e["action"] for e in audit["items"]}
    assert {"signup", "user.invite", "api_key.create"} <= actions


async def test_products_crud_validation_and_pagination(
    engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    tok = a.api_key
    status, body, _ = await call(
        engine, "POST", "/api/v1/products", tok, {"sku": "bad sku!", "title": "", "price": -1}
    )
    assert status == 422
    fields = {e["field"] for e in body["errors"]}
    assert {"sku", "title", "price"} <= fields
    skus = [f"pg-{n:03d}" for n in range(7)]
    for sku in skus:
        status, _, _ = await call(
            engine, "POST", "/api/v1/products", tok, {"sku": sku, "title": f"Item {sku}"}
        )
        assert status == 201
    status, _, _ = await call(
        engine, "POST", "/api/v1/products", tok, {"sku": skus[0], "title": "again"}
    )
    assert status == 409
    seen: list[str] = []
    cursor = None
    while True:
        path = "/api/v1/products?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await call(engine, "GET", path, tok)
        assert status == 200
        seen += [p["sku"] for p in page["items"]]
        if cursor is None:  # insert mid-walk: pages already served must not shift
            await call(engine, "POST", "/api/v1/products", tok, {"sku": "pa-000", "title": "z"})
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [s for s in seen if s.startswith("pg-")] == skus
    assert len(seen) == len(set(seen))
    status, _, _ = await call(engine, "GET", "/api/v1/products?limit=1000", tok)
    assert status == 422
    status, patched, _ = await call(
        engine, "PATCH", f"/api/v1/products/{skus[1]}", tok, {"price": 99, "in_stock": False}
    )
    assert status == 200 and patched["price"] == 99 and patched["in_stock"] is False
    status, _, _ = await call(engine, "DELETE", f"/api/v1/products/{skus[2]}", tok)
    assert status == 204
    status, _, _ = await call(engine, "GET", f"/api/v1/products/{skus[2]}", tok)
    assert status == 404


async def test_product_changes_reach_the_bot_search(engine: Engine) -> None:
    tenant = await make_tenant(engine, "Search shop")
    tok = tenant.tokens["admin"]
    status, _, _ = await call(
        engine,
        "POST",
        "/api/v1/products",
        tok,
        {"sku": "tea-1", "title": "Green tea with mint", "price": 20, "currency": "SAR"},
    )
    assert status == 201
    hits: list[dict[str, Any]] = []
    for _ in range(100):  # indexing is asynchronous
        status, body, _ = await call(engine, "GET", "/api/v1/products/search?q=mint%20tea", tok)
        assert status == 200
        hits = body["items"]
        if hits:
            break
        await asyncio.sleep(0.1)
    assert hits and hits[0]["sku"] == "tea-1"
    status, _, _ = await call(engine, "DELETE", "/api/v1/products/tea-1", tok)
    assert status == 204
    for _ in range(100):
        status, body, _ = await call(engine, "GET", "/api/v1/products/search?q=mint%20tea", tok)
        if not body["items"]:
            break
        await asyncio.sleep(0.1)
    assert body["items"] == []


async def test_a_write_whose_indexer_nudge_was_lost_is_still_indexed(engine: Engine) -> None:
    """The API process dies right after its write: the record carries "not indexed yet" (the
    same write), so the indexer's periodic sweep indexes it without any nudge."""
    import time

    from engine.domain.catalog import Product
    from engine.services.indexing import INDEX_STATE, INDEXED, pending_fields

    tenant = await make_tenant(engine, "Crashy shop")
    tok = tenant.tokens["admin"]
    doc = Product(sku="oud-9", title="Royal oud perfume", price=300.0).to_doc(tenant.merchant_id)
    products = engine.runtime.records.repos.products
    await products.create({**doc, **pending_fields(), "updated_at": time.time()})
    stored: dict[str, Any] | None = None
    for _ in range(300):  # the sweep runs every KALEEM_INDEX_RECONCILE_S (5 s)
        stored = await products.get(tenant.merchant_id, doc["_id"])
        if stored is not None and stored[INDEX_STATE] == INDEXED:
            break
        await asyncio.sleep(0.1)
    assert stored is not None and stored[INDEX_STATE] == INDEXED
    # No word (or synonym) in common with the title: only the product's vector can find it.
    query = "/api/v1/products/search?q=a%20gift%20for%20my%20wife"
    status, body, _ = await call(engine, "GET", query, tok)
    assert status == 200
    assert [h["sku"] for h in body["items"]] == ["oud-9"]


async def test_orders_idempotency(engine: Engine, tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    tok = a.tokens["agent"]
    await call(
        engine,
        "POST",
        "/api/v1/products",
        a.tokens["admin"],
        {"sku": "ord-1", "title": "Lamp", "price": 40, "currency": "SAR"},
    )
    order = {
        "customer": {"name": "Sara", "phone": "0551234567", "city": "Riyadh"},
        "items": [{"sku": "ord-1", "qty": 2}],
    }
    status, body, _ = await call(engine, "POST", "/api/v1/orders", tok, order)
    assert status == 400 and body["errors"][0]["field"] == "Idempotency-Key"
    key = str(uuid.uuid4())
    hdr = {"Idempotency-Key": key}
    status, first, _ = await call(engine, "POST", "/api/v1/orders", tok, order, hdr)
    assert status == 201 and first["total"] == 80.0
    status, again, headers = await call(engine, "POST", "/api/v1/orders", tok, order, hdr)
    assert status == 201 and again == first and headers.get("Idempotent-Replayed") == "true"
    changed = {**order, "items": [{"sku": "ord-1", "qty": 3}]}
    status, body, _ = await call(engine, "POST", "/api/v1/orders", tok, changed, hdr)
    assert status == 422
    # Concurrent duplicates: exactly one order, the others get 201 replay or 409.
    key2 = {"Idempotency-Key": str(uuid.uuid4())}
    results = await asyncio.gather(
        *(call(engine, "POST", "/api/v1/orders", tok, order, key2) for _ in range(5))
    )
    codes = sorted(r[0] for r in results)
    ids = {r[1]["id"] for r in results if r[0] == 201}
    assert len(ids) == 1 and set(codes) <= {201, 409}
    status, page, _ = await call(engine, "GET", "/api/v1/orders?limit=100", a.tokens["viewer"])
    assert sum(1 for o in page["items"] if o["id"] in ids | {first["id"]}) == 2
    status, upd, _ = await call(
        engine, "PATCH", f"/api/v1/orders/{first['id']}", tok, {"status": "confirmed"}
    )
    assert status == 200 and upd["status"] == "confirmed"
    status, _, _ = await call(
        engine, "PATCH", f"/api/v1/orders/{first['id']}", tok, {"status": "new"}
    )
    assert status == 409
    status, leads, _ = await call(engine, "GET", "/api/v1/leads", tok)
    assert any(lead["order_id"] == first["id"] for lead in leads["items"])


async def test_conversations_inbox_and_agent_reply(
    engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, _ = tenants
    cid = await seed_conversation(engine, a.merchant_id, "inbox-1")
    _, page, _ = await call(engine, "GET", "/api/v1/conversations", a.tokens["viewer"])
    convs = [c for c in page["items"] if c["customer_id"] == "inbox-1"]
    assert [c["id"] for c in convs] == [cid] and convs[0]["message_count"] == 2
    status, msgs, _ = await call(
        engine, "GET", f"/api/v1/conversations/{cid}/messages", a.tokens["viewer"]
    )
    assert status == 200 and {m["direction"] for m in msgs["items"]} == {"in", "out"}
    status, taken, _ = await call(
        engine, "POST", f"/api/v1/conversations/{cid}/takeover", a.tokens["agent"]
    )
    assert status == 200 and taken["paused"] and taken["status"] == "pending"
    status, sent, _ = await call(
        engine,
        "POST",
        f"/api/v1/conversations/{cid}/messages",
        a.tokens["agent"],
        {"text": "Hi, this is Huda"},
    )
    assert status == 201 and sent["author"]
    status, _, _ = await call(
        engine,
        "PATCH",
        f"/api/v1/conversations/{cid}",
        a.tokens["agent"],
        {"labels": ["vip"]},
    )
    assert status == 200
    status, page, _ = await call(
        engine, "GET", "/api/v1/conversations?label=vip", a.tokens["viewer"]
    )
    assert [c["id"] for c in page["items"]] == [cid]
    status, _, _ = await call(
        engine, "POST", f"/api/v1/conversations/{cid}/notes", a.tokens["agent"], {"text": "vip"}
    )
    assert status == 201
    status, done, _ = await call(
        engine, "POST", f"/api/v1/conversations/{cid}/resolve", a.tokens["agent"]
    )
    assert done["status"] == "resolved"
    status, stats, _ = await call(engine, "GET", "/api/v1/analytics?days=1", a.tokens["viewer"])
    assert status == 200 and stats["total"]["conversations"] >= 1
    assert stats["per_channel"]["playground"]["first_reply_p50_s"] == pytest.approx(0.4, abs=0.01)
    assert stats["top_questions"][0]["text"] == "do you have mugs?"


async def test_other_merchants_records_are_404_for_every_role(
    engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    """Every route that names a record, called with merchant B's credentials on A's ids."""
    from engine.http.routes import ALL_ROUTES

    a, b = tenants
    owner = a.tokens["owner"]
    await call(engine, "POST", "/api/v1/products", owner, {"sku": "iso-1", "title": "Iso"})
    await call(
        engine, "POST", "/api/v1/knowledge", owner, {"id": "iso-doc", "title": "T", "body": "B"}
    )
    _, order, _ = await call(
        engine,
        "POST",
        "/api/v1/products",
        owner,
        {"sku": "iso-2", "title": "Iso 2", "price": 5},
    )
    _, order, _ = await call(
        engine,
        "POST",
        "/api/v1/orders",
        owner,
        {
            "customer": {"name": "N", "phone": "0551112222", "city": "C"},
            "items": [{"sku": "iso-2", "qty": 1}],
        },
        {"Idempotency-Key": str(uuid.uuid4())},
    )
    _, lead, _ = await call(engine, "POST", "/api/v1/leads", owner, {"name": "L"})
    _, users, _ = await call(engine, "GET", "/api/v1/users", owner)
    _, keys, _ = await call(engine, "GET", "/api/v1/api-keys", owner)
    conv_id = await seed_conversation(engine, a.merchant_id, "iso-cust")
    job = await engine.import_and_wait(
        a.api_key, "/api/v1/catalog/import", b'{"sku": "iso-3", "title": "Iso 3"}\n'
    )
    _, channel, _ = await call(
        engine,
        "POST",
        "/api/v1/channels",
        owner,
        {
            "kind": "telegram",
            "bot_token": "1:iso",
            "secret_token": "iso",
            "api_base": "http://127.0.0.1:9",
        },
    )
    _, integration, _ = await call(
        engine,
        "POST",
        "/api/v1/integrations",
        owner,
        {
            "kind": "salla",
            "credentials": {"access_token": "iso", "webhook_secret": "iso"},
            "api_base": "http://127.0.0.1:9",
        },
    )
    dead = await dead_letter_of(engine, a.merchant_id)
    payment_id = "pay_0123456789abcdef"
    await engine.runtime.records.repos.payments.create(
        {
            "_id": payment_id,
            "merchant_id": a.merchant_id,
            "order_id": order["id"],
            "provider": "moyasar",
            "provider_ref": "inv_iso",
            "status": "paid",
            "url": "https://checkout.moyasar.com/invoices/inv_iso",
            "claim": "",
            "amount_minor": 500,
            "currency": "SAR",
            "refunded_minor": 0,
            "created_at": 1.0,
            "updated_at": 1.0,
        }
    )
    ids = {
        "product_id": "iso-1",
        "doc_id": "iso-doc",
        "order_id": order["id"],
        "lead_id": lead["id"],
        "user_id": users["items"][0]["id"],
        "key_id": keys["items"][0]["id"],
        "conversation_id": conv_id,
        "job_id": job["id"],
        "channel_id": channel["id"],
        "entry_id": dead,
        "integration_id": integration["id"],
        "payment_id": payment_id,
    }
    bodies = {
        "/api/v1/products/{product_id}": {"title": "x"},
        "/api/v1/knowledge/{doc_id}": {"title": "x"},
        "/api/v1/orders/{order_id}": {"status": "confirmed"},
        "/api/v1/leads/{lead_id}": {"note": "x"},
        "/api/v1/users/{user_id}": {"role": "viewer"},
        "/api/v1/conversations/{conversation_id}": {"labels": ["x"]},
        "/api/v1/conversations/{conversation_id}/messages": {"text": "x"},
        "/api/v1/conversations/{conversation_id}/notes": {"text": "x"},
        "/api/v1/conversations/{conversation_id}/cart": {"items": []},
        "/api/v1/payments/{payment_id}/refunds": {"amount_minor": 100},
    }
    checked = 0
    for route in ALL_ROUTES:
        if not route.path_params:
            continue
        if route.path_params == ["date"]:  # the caller's own business day, no record of A's
            continue  # (tests/api/test_settlement_api.py checks B never sees A's settlement)
        path = route.path.format(**ids)
        body = bodies.get(route.path) if route.method in {"POST", "PATCH", "PUT"} else None
        for credential in [*b.tokens.values(), b.api_key]:
            status, problem, _ = await call(engine, route.method, path, credential, body)
            assert status == 404, (route.method, route.path, status, problem)
            checked += 1
    assert checked >= 5 * 15
    # Lists never show A's records to B.
    _, page, _ = await call(engine, "GET", "/api/v1/products?limit=100", b.tokens["owner"])
    assert all(p["sku"] not in {"iso-1", "iso-2"} for p in page["items"])
    status, _, _ = await call(
        engine, "PUT", f"/api/v1/conversations/{conv_id}/cart", owner, {"items": [{"sku": "iso-2"}]}
    )
    assert status == 200
    for _ in range(200):  # the carts list is a projection written by the conversation host
        _, carts, _ = await call(engine, "GET", "/api/v1/carts", owner)
        if any(c["conversation_id"] == conv_id for c in carts["items"]):
            break
        await asyncio.sleep(0.05)
    assert any(c["conversation_id"] == conv_id for c in carts["items"])
    _, carts, _ = await call(engine, "GET", "/api/v1/carts?limit=100", b.tokens["owner"])
    assert all(c["conversation_id"] != conv_id for c in carts["items"])
    # A's records are untouched.
    status, still, _ = await call(engine, "GET", "/api/v1/products/iso-1", owner)
    assert status == 200 and still["title"] == "Iso"


async def test_openapi_lists_every_route_and_headers(engine: Engine) -> None:
    status, spec, headers = await call(engine, "GET", "/api/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served = set()
    for resource in engine.runtime.runner.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/"):
            continue
        for route in resource:
            if route.method != "HEAD":
                served.add((route.method, path))
    from engine.http.routes import ALL_ROUTES

    mine = {(r.method, r.path) for r in ALL_ROUTES}
    # Every /api route the gateway serves is a declared Route, and every one is documented.
    assert served == mine == documented
    assert ("POST", "/api/v1/channels") in documented and ("GET", "/api/v1/jobs/{job_id}") in (
        documented
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, headers = await call(engine, "GET", "/api/v1/products", "nope")
    assert status == 401 and "RateLimit-Remaining" in headers
    status, _, _ = await call(engine, "GET", "/api/v1/docs")
    assert status == 200


async def test_live_updates_reach_another_agent_over_websocket(
    engine: Engine, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    cid = await seed_conversation(engine, a.merchant_id, "live-1")
    url = engine.base_url.replace("http", "ws") + "/api/v1/live"
    async with engine.session.ws_connect(url) as bad:
        await bad.send_json({"type": "auth", "token": "not-a-token"})
        msg = await bad.receive(timeout=10)
        assert bad.close_code == 4401 or msg.type.name in {"CLOSE", "CLOSED", "CLOSING"}
    async with (
        engine.session.ws_connect(url) as ws,
        engine.session.ws_connect(url) as other,
    ):
        await ws.send_json({"type": "auth", "token": a.tokens["viewer"]})
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        await other.send_json({"type": "auth", "token": b.tokens["owner"]})
        assert (await other.receive_json(timeout=10))["merchant_id"] == b.merchant_id
        status, _, _ = await call(
            engine,
            "POST",
            f"/api/v1/conversations/{cid}/messages",
            a.tokens["agent"],
            {"text": "on my way"},
        )
        assert status == 201
        event = await ws.receive_json(timeout=10)
        assert event["type"] == "message.created" and event["data"]["text"] == "on my way"
        # The other merchant's socket never hears of it: its first event is its own.
        b_conv = await seed_conversation(engine, b.merchant_id, "live-b")
        status, _, _ = await call(
            engine,
            "POST",
            f"/api/v1/conversations/{b_conv}/notes",
            b.tokens["agent"],
            {"text": "b's note"},
        )
        assert status == 201
        first = await other.receive_json(timeout=10)
        assert first["type"] == "note.created" and first["data"]["conversation_id"] == b_conv
    status, body, _ = await call(engine, "GET", "/api/v1/live")
    assert status == 426 and body["title"] == "Upgrade required"


async def test_role_change_and_key_revocation_take_effect(engine: Engine) -> None:
    t = await make_tenant(engine, "Roles shop")
    owner = t.tokens["owner"]
    _, users, _ = await call(engine, "GET", "/api/v1/users?limit=100", owner)
    agent = next(u for u in users["items"] if u["role"] == "agent")
    status, changed, _ = await call(
        engine, "PATCH", f"/api/v1/users/{agent['id']}", owner, {"role": "viewer"}
    )
    assert status == 200 and changed["role"] == "viewer"
    status, _, _ = await call(engine, "GET", "/api/v1/auth/me", t.tokens["agent"])
    assert status == 401  # tokens minted before the change are void
    status, _, _ = await call(engine, "GET", "/api/v1/products", t.api_key)
    assert status == 200
    _, keys, _ = await call(engine, "GET", "/api/v1/api-keys", owner)
    assert keys["items"][0]["masked"].startswith("kal_") and "…" in keys["items"][0]["masked"]
    assert t.api_key not in str(keys)
    status, _, _ = await call(engine, "DELETE", f"/api/v1/api-keys/{keys['items'][0]['id']}", owner)
    assert status == 204
    status, _, _ = await call(engine, "GET", "/api/v1/products", t.api_key)
    assert status == 401
    _, audit, _ = await call(engine, "GET", "/api/v1/audit?limit=100", owner)
    actions = [e["action"] for e in audit["items"]]
    assert "user.role:viewer" in actions and "api_key.revoke" in actions
