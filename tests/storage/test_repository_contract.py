"""One contract for the repositories, run against both adapters.

``sqlite``: the embedded store on a real file in a tmp dir. ``mongo``: the MongoDB adapter on
``mongomock_motor`` (the only place mongomock is used: the test double of a MongoDB server,
which cannot run on this machine). Every repository method is exercised for what callers rely
on: tenant scoping, unique keys, keyset pages (forward, across ties, with filters), upserts and
idempotency, compare-and-set updates and counters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.mongo import MongoTables
from engine.adapters.repositories import SCHEMA, build_repositories, sqlite_repositories
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import ConversationFilter, Page, Repositories


def _mongomock_accepts_bulk_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    """mongomock 4.3 predates PyMongo 4.11's ``sort`` argument of bulk updates (always None
    here); drop it so the double accepts the requests PyMongo builds."""
    from mongomock.collection import BulkOperationBuilder

    original = BulkOperationBuilder.add_update

    def add_update(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BulkOperationBuilder, "add_update", add_update)


@pytest.fixture(params=["sqlite", "mongo"])
async def repos(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Repositories]:
    if request.param == "sqlite":
        r = sqlite_repositories(tmp_path / "records.sqlite3")
    else:
        from mongomock_motor import AsyncMongoMockClient

        _mongomock_accepts_bulk_sort(monkeypatch)
        r = build_repositories(MongoTables(AsyncMongoMockClient()["kaleem"], SCHEMA))
    await r.ensure_indexes()
    await r.ensure_indexes()  # idempotent
    yield r
    await r.close()


async def _walk(fetch: Any, limit: int) -> list[Document]:
    """Every page of a list, following ``after`` until it ends."""
    out: list[Document] = []
    after = None
    for _ in range(1000):
        page: Page = await fetch(limit=limit, after=after)
        assert len(page.items) <= limit
        out += page.items
        if page.after is None:
            return out
        after = page.after
    raise AssertionError("pages never ended")


def _ids(docs: list[Document]) -> list[str]:
    return [str(d["_id"]) for d in docs]


# -- merchants, users, API keys, audit ------------------------------------------------------


async def test_merchants(repos: Repositories) -> None:
    m = {"_id": "m1", "name": "Shop", "default_language": "ar", "api_key_hash": "h1"}
    await repos.merchants.create(dict(m))
    with pytest.raises(DuplicateKey):
        await repos.merchants.create({**m, "api_key_hash": "h2"})  # same id
    with pytest.raises(DuplicateKey):
        await repos.merchants.create({**m, "_id": "m2"})  # same key hash
    assert await repos.merchants.get("m1") == m
    assert await repos.merchants.by_api_key_hash("h1") == m
    assert await repos.merchants.by_api_key_hash("nope") is None
    changed = await repos.merchants.update_profile("m1", {"name": "Shop 2", "languages": ["ar"]})
    assert changed is not None and changed["name"] == "Shop 2" and changed["languages"] == ["ar"]
    assert await repos.merchants.update_profile("ghost", {"name": "x"}) is None
    assert await repos.merchants.delete("m1") is True
    assert await repos.merchants.delete("m1") is False
    assert await repos.merchants.get("m1") is None


def _user(uid: str, merchant: str, email: str, at: float, role: str = "agent") -> Document:
    return {
        "_id": uid,
        "merchant_id": merchant,
        "email": email,
        "role": role,
        "password_hash": "pw",
        "created_at": at,
    }


async def test_users_scoping_uniqueness_and_pages(repos: Repositories) -> None:
    await repos.users.create(_user("u1", "m1", "a@x.io", 1.0, "owner"))
    await repos.users.create(_user("u2", "m1", "b@x.io", 2.0))
    await repos.users.create(_user("u3", "m1", "c@x.io", 2.0))  # a tie on created_at
    await repos.users.create(_user("u9", "m2", "z@x.io", 5.0, "owner"))
    with pytest.raises(DuplicateKey):  # e-mails are unique across merchants
        await repos.users.create(_user("u4", "m2", "a@x.io", 3.0))

    assert (await repos.users.by_email("a@x.io") or {})["_id"] == "u1"
    assert await repos.users.get("m1", "u1") is not None
    assert await repos.users.get("m2", "u1") is None  # another merchant's user
    assert await repos.users.exists("m1", "u2") and not await repos.users.exists("m2", "u2")
    assert await repos.users.set_role("m2", "u2", "admin") is False
    assert await repos.users.set_role("m1", "u2", "admin") is True
    assert (await repos.users.get("m1", "u2") or {})["role"] == "admin"
    assert await repos.users.count_owners("m1") == 1
    assert await repos.users.replace_password_hash("m2", "u2", "h", "h2") is False
    assert await repos.users.replace_password_hash("m1", "u2", "stale", "h2") is False
    first = str((await repos.users.get("m1", "u2") or {}).get("password_hash"))
    assert await repos.users.replace_password_hash("m1", "u2", first, "h2") is True
    assert (await repos.users.get("m1", "u2") or {})["password_hash"] == "h2"
    assert await repos.users.count_owners("m2") == 1

    newest_first = await _walk(lambda **kw: repos.users.page("m1", **kw), 1)
    assert _ids(newest_first) == ["u3", "u2", "u1"]  # ties broken by _id, same direction
    assert _ids(await _walk(lambda **kw: repos.users.page("m1", **kw), 2)) == ["u3", "u2", "u1"]
    assert await repos.users.delete("m2", "u1") is False
    assert await repos.users.delete("m1", "u1") is True
    assert await repos.users.by_email("a@x.io") is None


async def test_invitations_are_used_once(repos: Repositories) -> None:
    await repos.users.create(
        {**_user("u1", "m1", "i@x.io", 1.0), "password_hash": None, "invite_hash": "ih"}
    )
    invited = await repos.users.by_invite_hash("ih")
    assert invited is not None and invited["_id"] == "u1"
    assert await repos.users.accept_invite("u1", "ih", "new-hash") is True
    assert await repos.users.accept_invite("u1", "ih", "other") is False  # compare-and-set
    user = await repos.users.get("m1", "u1")
    assert user is not None and user["password_hash"] == "new-hash"
    assert user["invite_hash"] is None
    assert await repos.users.by_invite_hash("ih") is None


async def test_api_keys(repos: Repositories) -> None:
    for n, merchant in enumerate(["m1", "m1", "m2"]):
        await repos.api_keys.create(
            {
                "_id": f"k{n}",
                "merchant_id": merchant,
                "key_hash": f"kh{n}",
                "role": "admin",
                "created_at": float(n),
                "revoked_at": None,
            }
        )
    with pytest.raises(DuplicateKey):
        await repos.api_keys.create({"_id": "k9", "merchant_id": "m1", "key_hash": "kh0"})
    assert (await repos.api_keys.by_hash("kh2") or {})["merchant_id"] == "m2"
    assert await repos.api_keys.get("m1", "k2") is None
    assert await repos.api_keys.exists("m2", "k2")
    assert await repos.api_keys.revoke("m1", "k2", 9.0) is None  # not theirs
    revoked = await repos.api_keys.revoke("m1", "k1", 9.0)
    assert revoked is not None and revoked["revoked_at"] == 9.0 and revoked["key_hash"] == "kh1"
    assert _ids(await _walk(lambda **kw: repos.api_keys.page("m1", **kw), 1)) == ["k1", "k0"]


async def test_audit_newest_first_by_id(repos: Repositories) -> None:
    for n in range(5):
        await repos.audit.append(
            {"_id": f"au_{n:013d}_x", "merchant_id": "m1" if n != 2 else "m2", "action": "a"}
        )
    listed = await _walk(lambda **kw: repos.audit.page("m1", **kw), 2)
    assert _ids(listed) == [f"au_{n:013d}_x" for n in (4, 3, 1, 0)]


# -- channels, deliveries, jobs --------------------------------------------------------------


async def test_channels(repos: Repositories) -> None:
    for n, merchant in enumerate(["m1", "m2", "m1"]):
        await repos.channels.create(
            {"_id": f"ch{n}", "merchant_id": merchant, "kind": "telegram", "created_at": 10.0 - n}
        )
    assert (await repos.channels.get("ch1") or {})["merchant_id"] == "m2"  # global, by id
    assert await repos.channels.get_owned("m1", "ch1") is None
    assert _ids(await repos.channels.for_merchant("m1", limit=10)) == ["ch2", "ch0"]
    assert await repos.channels.mark_deleted("m2", "ch0", 5.0) is False
    assert await repos.channels.mark_deleted("m1", "ch0", 5.0) is True
    gone = await repos.channels.get("ch0")
    assert gone is not None and gone["deleted_at"] == 5.0 and gone["secrets_enc"] == {}


async def test_deliveries_upsert_facts_on_top(repos: Repositories) -> None:
    await repos.deliveries.record("m1", "ch1", "wamid.1", {"status": "read", "read_at": 2.0})
    await repos.deliveries.record("m1", "ch1", "wamid.1", {"status": "sent", "outbox_id": "o1"})
    got = await repos.deliveries.get("m1", "ch1", "wamid.1")
    assert got is not None
    assert (got["status"], got["read_at"], got["outbox_id"]) == ("sent", 2.0, "o1")
    assert got["merchant_id"] == "m1" and got["provider_message_id"] == "wamid.1"
    assert await repos.deliveries.get("m2", "ch1", "wamid.1") is None
    with pytest.raises(DuplicateKey):  # the id belongs to another merchant
        await repos.deliveries.record("m2", "ch1", "wamid.1", {"status": "x"})


async def test_jobs(repos: Repositories) -> None:
    job = {"_id": "j1", "merchant_id": "m1", "status": "running"}
    await repos.jobs.create({**job, "progress": {"total": 3, "stored": 0, "indexed": 0}})
    await repos.jobs.update("j1", {"progress.stored": 3, "status": "done"})
    got = await repos.jobs.get("m1", "j1")
    assert got is not None and got["status"] == "done"
    assert got["progress"] == {"total": 3, "stored": 3, "indexed": 0}
    assert await repos.jobs.get("m2", "j1") is None


# -- catalogue, tombstones --------------------------------------------------------------------


def _product(merchant: str, sku: str, **extra: Any) -> Document:
    return {"_id": f"{merchant}:{sku}", "merchant_id": merchant, "sku": sku, **extra}


async def test_products_crud_and_unique_sku(repos: Repositories) -> None:
    p = repos.products
    await p.create(_product("m1", "a", title="A", price=1.0, updated_at=1.0))
    await p.create(_product("m2", "a", title="other tenant, same sku"))
    with pytest.raises(DuplicateKey):
        await p.create(_product("m1", "a"))
    with pytest.raises(DuplicateKey):  # same (merchant, sku) under another id
        await p.create({"_id": "x", "merchant_id": "m1", "sku": "a"})
    assert (await p.by_sku("m1", "a") or {})["title"] == "A"
    assert (await p.by_sku("m2", "a") or {})["_id"] == "m2:a"
    assert await p.get("m2", "m1:a") is None and await p.exists("m1", "m1:a")
    assert await p.update("m2", "m1:a", {"price": 0.0}) is None
    changed = await p.update("m1", "m1:a", {"price": 2.0, "attributes": {"color": "red"}})
    assert changed is not None and changed["price"] == 2.0 and changed["title"] == "A"
    assert await p.delete("m2", "m1:a") is False
    assert await p.delete("m1", "m1:a") is True
    assert await p.get("m1", "m1:a") is None
    assert await p.count("m1") == 0 and await p.count("m2") == 1


async def test_products_bulk_upsert_pages_and_categories(repos: Repositories) -> None:
    p = repos.products
    await p.create(_product("m1", "p00", price=1.0, category="tea", updated_at=1.0))
    docs = [
        _product(
            "m1",
            f"p{n:02d}",
            price=float(n),
            category=[None, "tea", "cups", ""][n % 4],
            in_stock=n % 3 != 0,
        )
        for n in range(25)
    ]
    assert await p.upsert_many("m1", docs, 50.0) == 25
    assert await p.upsert_many("m1", [], 51.0) == 0
    await p.upsert_many("m2", [_product("m2", "p00", category="tea")], 60.0)
    assert await p.count("m1") == 25
    first = await p.get("m1", "m1:p00")
    assert first is not None and first["price"] == 0.0 and first["updated_at"] == 50.0
    assert await p.newest_change("m1") == 50.0 and await p.newest_change("m9") is None

    all_ids = _ids(await _walk(lambda **kw: p.page("m1", **kw), 7))
    assert all_ids == sorted(all_ids) and len(all_ids) == 25

    def filtered(category: str | None, in_stock: bool | None) -> Any:
        return lambda **kw: p.page_filtered("m1", category=category, in_stock=in_stock, **kw)

    tea = _ids(await _walk(filtered("tea", None), 2))
    assert tea == [f"m1:p{n:02d}" for n in range(25) if n % 4 == 1]
    tea_in_stock = _ids(await _walk(filtered("tea", True), 2))
    assert tea_in_stock == [f"m1:p{n:02d}" for n in range(25) if n % 4 == 1 and n % 3 != 0]
    out_of_stock = _ids(await _walk(filtered(None, False), 3))
    assert out_of_stock == [f"m1:p{n:02d}" for n in range(25) if n % 3 == 0]

    # Uncategorised (null, "") products are not a category; ties are ordered by name.
    assert await p.categories("m1", limit=10) == [("cups", 6), ("tea", 6)]
    assert await p.categories("m1", limit=1) == [("cups", 6)]
    scanned = [d async for page in p.scan("m1", batch=10) for d in page]
    assert sorted(_ids(scanned)) == all_ids


async def test_catalogue_pending_and_mark_indexed_compare_and_set(repos: Repositories) -> None:
    k = repos.knowledge
    for n in range(7):
        merchant = "m1" if n != 3 else "m2"
        await k.create(
            {
                "_id": f"{merchant}:d{n}",
                "merchant_id": merchant,
                "doc_id": f"d{n}",
                "index_state": "pending" if n != 5 else "indexed",
                "index_rev": f"r{n}",
            }
        )
    walked: list[str] = []
    after: str | None = None
    while page := await k.pending("m1", after_id=after, limit=2):
        walked += _ids(page)
        after = walked[-1]
    assert walked == ["m1:d0", "m1:d1", "m1:d2", "m1:d4", "m1:d6"]
    everyone = _ids(await k.pending(None, after_id=None, limit=100))
    assert "m2:d3" in everyone and len(everyone) == 6
    assert await k.mark_indexed("m1", "m1:d0", "stale-rev", {"index_state": "indexed"}) is False
    assert await k.mark_indexed("m2", "m1:d0", "r0", {"index_state": "indexed"}) is False
    assert await k.mark_indexed("m1", "m1:d0", "r0", {"index_state": "indexed"}) is True
    assert "m1:d0" not in _ids(await k.pending("m1", after_id=None, limit=100))
    # Imported records carry no revision: the compare matches a missing one.
    await k.create({"_id": "m1:d9", "merchant_id": "m1", "doc_id": "d9", "index_state": "pending"})
    assert await k.mark_indexed("m1", "m1:d9", None, {"index_state": "indexed"}) is True


async def test_tombstones(repos: Repositories) -> None:
    for n in range(4):
        await repos.tombstones.add(
            {"_id": f"products:x{n}", "merchant_id": "m1" if n % 2 else "m2", "record_id": "r"}
        )
    assert _ids(await repos.tombstones.batch("m1", limit=10)) == ["products:x1", "products:x3"]
    assert len(await repos.tombstones.batch(None, limit=3)) == 3
    await repos.tombstones.remove("m2", "products:x1")  # not theirs: stays
    await repos.tombstones.remove("m1", "products:x1")
    assert _ids(await repos.tombstones.batch("m1", limit=10)) == ["products:x3"]


# -- conversations, messages, notes, carts ------------------------------------------------------


def _message(key: str, mid: str, at: float, direction: str = "in", **extra: Any) -> Document:
    return {
        "_id": mid,
        "conversation_key": key,
        "direction": direction,
        "text": f"text {mid}",
        "at": at,
        **extra,
    }


async def test_messages_are_idempotent_and_paged_newest_first(repos: Repositories) -> None:
    key = "m1:ch1:c1"
    for n in range(6):
        await repos.messages.record("m1", _message(key, f"in:{n}", float(n // 2)))  # ties
    await repos.messages.record("m1", _message(key, "in:0", 0.0, text="replayed"))
    await repos.messages.record("m1", _message("m1:ch1:c2", "in:x", 9.0))
    listed = await _walk(lambda **kw: repos.messages.page("m1", key, **kw), 4)
    assert _ids(listed) == ["in:5", "in:4", "in:3", "in:2", "in:1", "in:0"]
    assert listed[-1]["text"] == "replayed" and listed[-1]["merchant_id"] == "m1"
    assert (await repos.messages.page("m2", key, limit=5, after=None)).items == []
    recent = await repos.messages.since("m1", 2.0, limit=10)
    assert sorted(_ids(recent)) == ["in:4", "in:5", "in:x"]
    assert len(await repos.messages.since("m1", 0.0, limit=3)) == 3
    with pytest.raises(DuplicateKey):  # a message id is never taken over by another tenant
        await repos.messages.record("m2", _message(key, "in:1", 1.0))


async def test_conversation_summary_counters_and_upsert(repos: Repositories) -> None:
    c = repos.conversations
    key = "m1:ch1:cust"
    await c.touch("m1", _message(key, "out:1", 5.0, "out"))
    await c.touch("m1", _message(key, "in:1", 3.0))
    await c.touch("m1", _message(key, "in:2", 4.0))
    await c.touch("m1", _message(key, "out:2", 6.0, "out", handoff=True))
    cid = (await c.page("m1", ConversationFilter(), limit=5, after=None)).items[0]["_id"]
    conv = await c.get("m1", cid)
    assert conv is not None
    assert (conv["message_count"], conv["inbound_count"], conv["outbound_count"]) == (4, 2, 2)
    assert conv["first_in_at"] == 3.0 and conv["first_reply_at"] == 5.0  # minimums
    assert conv["last_message_at"] == 6.0 and conv["created_at"] == 5.0  # set once
    assert (conv["channel_id"], conv["customer_id"]) == ("ch1", "cust")
    assert conv["status"] == "pending" and conv["handoff"] is True and conv["labels"] == []
    assert await c.get("m2", cid) is None and not await c.exists("m2", cid)
    await c.touch("m1", {"conversation_key": "", "at": 1.0})  # no key: nothing to summarise
    assert len((await c.page("m1", ConversationFilter(), limit=5, after=None)).items) == 1
    fresh = "m1:ch1:new"
    await c.touch("m1", _message(fresh, "in:9", 1.0))
    page = await c.page("m1", ConversationFilter(status="open"), limit=5, after=None)
    assert [d["conversation_key"] for d in page.items] == [fresh]


async def test_conversation_lists_filters_and_keysets(repos: Repositories) -> None:
    c = repos.conversations
    for n in range(30):
        key = f"m1:{'tg' if n % 2 else 'wa'}:Cust-{n:02d}"
        at = float(n // 3 + 1)  # ties; 0.0 would mean "now" (an unset time)
        await c.touch("m1", _message(key, f"in:{n}", at, text=f"Hello number {n}"))
    await c.touch("m2", _message("m2:tg:other", "in:o", 100.0))
    everything = await _walk(lambda **kw: c.page("m1", ConversationFilter(), **kw), 4)
    assert len(everything) == 30 and len(set(_ids(everything))) == 30
    keys = [(d["last_message_at"], d["_id"]) for d in everything]
    assert keys == sorted(keys, reverse=True)  # newest first, ties by id
    ids = _ids(everything)
    for n, cid in enumerate(ids[:12]):
        changes: Document = {"status": "pending" if n % 2 else "open"}
        if n % 3 == 0:
            changes["labels"] = ["vip", "new"]
        if n % 4 == 0:
            changes["assignee"] = "u1"
        assert await c.update("m1", cid, changes) is not None
    assert await c.update("m2", ids[0], {"status": "resolved"}) is None

    async def listed(f: ConversationFilter, limit: int = 2) -> list[Document]:
        return await _walk(lambda **kw: c.page("m1", f, **kw), limit)

    vip_pending = await listed(ConversationFilter(status="pending", label="vip"))
    assert _ids(vip_pending) == [ids[n] for n in range(12) if n % 2 and n % 3 == 0]
    assert _ids(await listed(ConversationFilter(assignee="u1"))) == [ids[n] for n in (0, 4, 8)]
    telegram = await listed(ConversationFilter(channel_id="tg"), 5)
    assert len(telegram) == 15 and {d["channel_id"] for d in telegram} == {"tg"}
    by_text = await listed(ConversationFilter(text="NUMBER 1"), 3)
    assert sorted(d["customer_id"] for d in by_text) == sorted(
        ["Cust-01", *(f"Cust-{n}" for n in range(10, 20))]
    )
    by_customer = await listed(ConversationFilter(text="cust-2"))
    assert len(by_customer) == 10
    assert await listed(ConversationFilter(text="no such words")) == []
    assert await listed(ConversationFilter(text="(.*)")) == []  # text, not a pattern
    active = await c.active_since("m1", 9.0, channel_id=None, limit=100)
    assert sorted(d["customer_id"] for d in active) == [f"Cust-{n}" for n in range(24, 30)]
    active_tg = await c.active_since("m1", 9.0, channel_id="tg", limit=2)
    assert len(active_tg) == 2 and {d["channel_id"] for d in active_tg} == {"tg"}


async def test_notes(repos: Repositories) -> None:
    for n in range(4):
        await repos.notes.add(
            {
                "_id": f"note_{n:03d}",
                "merchant_id": "m1",
                "conversation_id": "cv1" if n != 2 else "cv2",
                "text": str(n),
            }
        )
    notes = await repos.notes.for_conversation("m1", "cv1", limit=2)
    assert _ids(notes) == ["note_000", "note_001"]
    assert await repos.notes.for_conversation("m2", "cv1", limit=10) == []


async def test_carts(repos: Repositories) -> None:
    for n in range(5):
        await repos.carts.save(
            "m1",
            {
                "_id": f"cv{n}",
                "merchant_id": "m1",
                "channel_id": "tg" if n % 2 else "wa",
                "items": [{"sku": "a", "qty": n + 1}],
                "updated_at": float(n),
            },
        )
    await repos.carts.save("m1", {"_id": "cv0", "items": [], "updated_at": 9.0})
    cart = await repos.carts.get("m1", "cv0")
    assert cart is not None and cart["items"] == [] and cart["channel_id"] == "wa"
    newest = await _walk(lambda **kw: repos.carts.page("m1", channel_id=None, **kw), 2)
    assert _ids(newest) == ["cv0", "cv4", "cv3", "cv2", "cv1"]
    tg = await _walk(lambda **kw: repos.carts.page("m1", channel_id="tg", **kw), 1)
    assert _ids(tg) == ["cv3", "cv1"]
    await repos.carts.remove("m2", "cv0")
    assert await repos.carts.get("m1", "cv0") is not None
    await repos.carts.remove("m1", "cv0")
    assert await repos.carts.get("m1", "cv0") is None
    assert await repos.carts.get("m2", "cv1") is None


# -- orders, leads, knowledge gaps --------------------------------------------------------------


def _order(n: int, merchant: str = "m1", **extra: Any) -> Document:
    return {
        "_id": f"ord_{n:02d}",
        "merchant_id": merchant,
        "status": "new",
        "phone": "0551" if n % 2 else "0552",
        "conversation_key": f"{merchant}:tg:c{n % 3}",
        "created_at": float(n // 2),
        **extra,
    }


async def test_orders(repos: Repositories) -> None:
    o = repos.orders
    for n in range(10):
        await o.create(_order(n))
    await o.create(_order(50, "m2", phone="0551"))
    with pytest.raises(DuplicateKey):
        await o.create(_order(3))
    assert await o.get("m2", "ord_03") is None and await o.get("m1", "ord_03") is not None
    phone = await o.for_phone("m1", "0551", limit=3)
    assert _ids(phone) == ["ord_09", "ord_07", "ord_05"]
    assert _ids(await o.for_conversation("m1", "m1:tg:c0", limit=20)) == [
        "ord_09",
        "ord_06",
        "ord_03",
        "ord_00",
    ]
    assert await o.set_status("m1", "ord_03", "confirmed", "shipped", 5.0) is None  # CAS
    assert await o.set_status("m2", "ord_03", "new", "confirmed", 5.0) is None
    done = await o.set_status("m1", "ord_03", "new", "confirmed", 5.0)
    assert done is not None and done["status"] == "confirmed" and done["updated_at"] == 5.0
    all_orders = await _walk(lambda **kw: o.page("m1", status=None, phone=None, **kw), 3)
    assert _ids(all_orders) == [f"ord_{n:02d}" for n in range(9, -1, -1)]
    confirmed = await _walk(lambda **kw: o.page("m1", status="confirmed", phone=None, **kw), 3)
    assert _ids(confirmed) == ["ord_03"]
    by_phone = await _walk(lambda **kw: o.page("m1", status="new", phone="0552", **kw), 2)
    assert _ids(by_phone) == ["ord_08", "ord_06", "ord_04", "ord_02", "ord_00"]
    assert sorted(_ids(await o.since("m1", 3.0, limit=100))) == [
        "ord_06",
        "ord_07",
        "ord_08",
        "ord_09",
    ]


async def test_leads(repos: Repositories) -> None:
    for n in range(5):
        await repos.leads.create(
            {
                "_id": f"lead_{n}",
                "merchant_id": "m1",
                "status": "new" if n % 2 else "won",
                "order_id": "ord_1" if n < 2 else None,
                "created_at": float(n),
            }
        )
    assert _ids(await repos.leads.for_order("m1", "ord_1")) == ["lead_0", "lead_1"]
    assert await repos.leads.for_order("m2", "ord_1") == []
    assert await repos.leads.update("m2", "lead_1", {"status": "lost"}) is None
    changed = await repos.leads.update("m1", "lead_1", {"status": "lost", "note": "n"})
    assert changed is not None and (changed["status"], changed["note"]) == ("lost", "n")
    won = await _walk(lambda **kw: repos.leads.page("m1", status="won", **kw), 2)
    assert _ids(won) == ["lead_4", "lead_2", "lead_0"]
    assert len(await _walk(lambda **kw: repos.leads.page("m1", status=None, **kw), 2)) == 5
    assert await repos.leads.get("m2", "lead_0") is None


async def test_knowledge_gaps_count_and_rank(repos: Repositories) -> None:
    g = repos.gaps
    for at, gap in [(1.0, "a"), (2.0, "b"), (3.0, "a"), (4.0, "c"), (5.0, "b"), (6.0, "d")]:
        await g.bump("m1", f"m1:{gap}", f"question {gap}", {"intent": "x", "best_score": at}, at)
    await g.bump("m2", "m2:a", "question a", {"intent": "x"}, 9.0)
    top = await g.top("m1", limit=3)
    assert [(d["question"], d["count"]) for d in top] == [
        ("question b", 2),  # count ties: the most recent first
        ("question a", 2),
        ("question d", 1),
    ]
    a = top[1]
    assert (a["first_at"], a["last_at"], a["best_score"]) == (1.0, 3.0, 3.0)
    assert [d["count"] for d in await g.top("m2", limit=10)] == [1]
    with pytest.raises(DuplicateKey):  # a gap id is never taken over by another tenant
        await g.bump("m2", "m1:a", "question a", {}, 9.0)


# -- what every repository shares ----------------------------------------------------------------


async def test_returned_records_are_copies(repos: Repositories) -> None:
    doc = _product("m1", "a", tags=["x"], price=1.0)
    await repos.products.create(doc)
    doc["price"] = 99.0  # the caller's dict is not the stored record
    got = await repos.products.get("m1", "m1:a")
    assert got is not None and got["price"] == 1.0
    got["tags"].append("y")  # nor is a returned one
    assert (await repos.products.get("m1", "m1:a") or {})["tags"] == ["x"]


async def test_unstorable_values_are_rejected_and_nothing_is_written(
    repos: Repositories,
) -> None:
    with pytest.raises(ValueError):
        await repos.products.create(_product("m1", "nan", price=float("nan")))
    with pytest.raises(TypeError):
        await repos.products.create(_product("m1", "set", tags={1, 2}))
    with pytest.raises(ValueError):
        await repos.products.create(_product("m1", "big", n=2**70))
    await repos.products.create(_product("m1", "ok", price=1.0))
    with pytest.raises(TypeError):
        await repos.products.update("m1", "m1:ok", {"price": object()})
    assert await repos.products.count("m1") == 1
    assert (await repos.products.get("m1", "m1:ok") or {})["price"] == 1.0


async def test_a_colliding_update_is_rejected_whole(repos: Repositories) -> None:
    await repos.products.create(_product("m1", "a", title="A"))
    await repos.products.create(_product("m1", "b", title="B"))
    with pytest.raises(DuplicateKey):
        await repos.products.update("m1", "m1:b", {"sku": "a", "title": "changed"})
    kept = await repos.products.get("m1", "m1:b")
    assert kept is not None and (kept["sku"], kept["title"]) == ("b", "B")
    with pytest.raises(DuplicateKey):
        await repos.products.create({"_id": "m1:c", "merchant_id": "m1", "sku": "b"})
    await repos.products.delete("m1", "m1:a")
    await repos.products.create({"_id": "m1:c", "merchant_id": "m1", "sku": "a"})  # freed


async def test_the_mongo_adapter_constructs_without_io() -> None:
    """Building the production store at the composition root never blocks or fails on a slow
    server: the client connects on first use, and ``ping`` is the explicit check."""
    tables = MongoTables.connect(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200", "kaleem", SCHEMA
    )
    with pytest.raises(Exception):  # noqa: B017 - any driver error: nothing listens there
        await tables.ping()
    await tables.close()


async def test_ledger_appends_once_and_pages_a_window_oldest_first(repos: Repositories) -> None:
    from engine.domain.ledger import ledger_entry

    def entry(n: int, merchant: str = "m1") -> Document:
        return ledger_entry(
            merchant_id=merchant,
            provider="moyasar",
            provider_event_id=f"evt_{n:02d}",
            kind="capture",
            amount_minor=100 * n,
            fee_minor=n,
            occurred_at=float(n // 2),  # pairs share a time: ties order by _id
            payment_id=f"pay_{n}",
        )

    for n in range(10):
        assert await repos.ledger.record(entry(n)) is True
    assert await repos.ledger.record(entry(3)) is False  # a redelivered event
    assert await repos.ledger.record({**entry(3), "amount_minor": 999}) is False
    assert await repos.ledger.record(entry(11, merchant="m2")) is True
    window = await _walk(lambda **kw: repos.ledger.between("m1", 1.0, 4.0, **kw), 4)
    assert [d["provider_event_id"] for d in window] == [f"evt_{n:02d}" for n in range(2, 8)]
    assert [d["amount_minor"] for d in window] == [200, 300, 400, 500, 600, 700]
    other = await _walk(lambda **kw: repos.ledger.between("m2", 0.0, 10.0, **kw), 4)
    assert _ids(other) == ["moyasar:evt_11:capture"]


async def test_integrations_scoping_compare_and_set_and_the_connected_walk(
    repos: Repositories,
) -> None:
    for n, merchant in enumerate(["m1", "m2", "m1"]):
        await repos.integrations.create(
            {
                "_id": f"in{n}",
                "merchant_id": merchant,
                "kind": "salla",
                "connected": True,
                "token_rev": "r0",
                "sync": {"products": 0, "orders": 0, "last_error": None},
                "created_at": 10.0 - n,
            }
        )
    assert (await repos.integrations.get("in1") or {})["merchant_id"] == "m2"  # global, by id
    assert await repos.integrations.get_owned("m1", "in1") is None
    assert _ids(await repos.integrations.for_merchant("m1", limit=10)) == ["in2", "in0"]
    progressed = await repos.integrations.update("m1", "in0", {"sync.products": 120})
    assert progressed is not None and progressed["sync"]["products"] == 120
    assert await repos.integrations.update("m2", "in0", {"sync.products": 1}) is None
    swapped = await repos.integrations.update_if(
        "m1", "in0", {"token_rev": "r0"}, {"token_rev": "r1"}
    )
    assert swapped is not None and swapped["token_rev"] == "r1"
    # A second refresh that read the old revision loses: the single-use token was spent.
    assert (
        await repos.integrations.update_if("m1", "in0", {"token_rev": "r0"}, {"token_rev": "r2"})
        is None
    )
    await repos.integrations.bump("m1", "in0", "sync.orders", 1)
    await repos.integrations.bump("m1", "in0", "sync.orders", 2)
    counted = await repos.integrations.get("in0")
    assert counted is not None and counted["sync"]["orders"] == 3
    assert counted["sync"]["products"] == 120
    await repos.integrations.update("m1", "in2", {"connected": False})
    first = await repos.integrations.connected(after_id=None, limit=1)
    assert _ids(first) == ["in0"]
    assert _ids(await repos.integrations.connected(after_id="in0", limit=10)) == ["in1"]


async def test_store_events_are_recorded_once_and_pruned_by_age(repos: Repositories) -> None:
    def event(n: int, merchant: str = "m1") -> Document:
        return {"_id": f"in1:evt{n}", "merchant_id": merchant, "at": float(n)}

    assert not await repos.store_events.seen("m1", "in1:evt1")
    for n in range(5):
        assert await repos.store_events.record(event(n)) is True
    assert await repos.store_events.record(event(1)) is False  # a redelivery
    assert await repos.store_events.seen("m1", "in1:evt1")
    assert not await repos.store_events.seen("m2", "in1:evt1")
    assert await repos.store_events.prune(3.0, limit=2) == 2
    assert await repos.store_events.prune(3.0, limit=10) == 1
    assert not await repos.store_events.seen("m1", "in1:evt2")
    assert await repos.store_events.seen("m1", "in1:evt3")


async def test_platform_orders_upsert_their_status_and_keep_what_was_inserted(
    repos: Repositories,
) -> None:
    first = {
        "status": "confirmed",
        "platform_status": "in_progress",
        "phone": "+9665",
        "total": 9.0,
    }
    await repos.orders.upsert_platform(
        "m1", "ord_aaaaaaaaaaaa", first, on_insert={"items": [], "created_at": 1.0}
    )
    later = {"status": "shipped", "platform_status": "delivering"}
    await repos.orders.upsert_platform(
        "m1", "ord_aaaaaaaaaaaa", later, on_insert={"items": ["x"], "created_at": 2.0}
    )
    got = await repos.orders.get("m1", "ord_aaaaaaaaaaaa")
    assert got is not None
    assert (got["status"], got["platform_status"], got["total"]) == ("shipped", "delivering", 9.0)
    assert got["items"] == [] and got["created_at"] == 1.0
    assert await repos.orders.get("m2", "ord_aaaaaaaaaaaa") is None
    assert [o["_id"] for o in await repos.orders.for_phone("m1", "+9665", limit=5)] == [
        "ord_aaaaaaaaaaaa"
    ]
    await repos.orders.upsert_platform(
        "m1", "ord_aaaaaaaaaaaa", {"platform_order_number": "55123"}, on_insert={}
    )
    found = await repos.orders.by_platform_number("m1", "55123", limit=5)
    assert [o["_id"] for o in found] == ["ord_aaaaaaaaaaaa"]
    assert await repos.orders.by_platform_number("m2", "55123", limit=5) == []


async def test_settlements_insert_once_retry_only_a_failed_one_and_page_newest_first(
    repos: Repositories,
) -> None:
    def settlement(merchant: str, day: str, status: str = "completed") -> Document:
        return {
            "_id": f"{merchant}:{day}",
            "merchant_id": merchant,
            "date": day,
            "status": status,
            "error": "ledger_unavailable" if status == "failed" else None,
            "net_minor": 100,
        }

    for d in ("2026-11-28", "2026-11-30", "2026-12-01"):
        assert await repos.settlements.insert(settlement("m1", d)) is True
    assert await repos.settlements.insert(settlement("m1", "2026-11-29", "failed")) is True
    assert await repos.settlements.insert(settlement("m2", "2026-11-30")) is True
    # A second settlement of the same date never replaces the first.
    assert (
        await repos.settlements.insert({**settlement("m1", "2026-11-30"), "net_minor": 7}) is False
    )
    assert (await repos.settlements.get("m1", "2026-11-30") or {})["net_minor"] == 100
    assert await repos.settlements.get("m2", "2026-11-28") is None  # another merchant's date

    # Only a failed settlement is replaced (compare-and-set on the status).
    assert await repos.settlements.replace_failed("m1", "2026-11-30", {"net_minor": 1}) is None
    assert (
        await repos.settlements.replace_failed("m2", "2026-11-29", {"status": "completed"}) is None
    )
    done = await repos.settlements.replace_failed(
        "m1", "2026-11-29", {"status": "completed", "error": None, "net_minor": 5}
    )
    assert done is not None and done["status"] == "completed" and done["net_minor"] == 5
    assert await repos.settlements.replace_failed("m1", "2026-11-29", {"net_minor": 9}) is None

    pages = await _walk(lambda **kw: repos.settlements.page("m1", **kw), 3)
    assert [d["date"] for d in pages] == ["2026-12-01", "2026-11-30", "2026-11-29", "2026-11-28"]
    some = await repos.settlements.between("m1", "2026-11-29", "2026-11-30", limit=10)
    assert [d["date"] for d in some] == ["2026-11-30", "2026-11-29"]
    assert [
        d["date"]
        for d in await repos.settlements.between("m2", "2026-01-01", "2026-12-31", limit=10)
    ] == ["2026-11-30"]


async def test_merchants_page_walks_every_merchant_by_id(repos: Repositories) -> None:
    for i in (3, 1, 2, 5, 4):
        await repos.merchants.create({"_id": f"m{i}", "name": "S", "api_key_hash": f"h{i}"})
    walked = await _walk(lambda **kw: repos.merchants.page(**kw), 2)
    assert _ids(walked) == ["m1", "m2", "m3", "m4", "m5"]


async def test_payments_are_scoped_found_by_provider_ref_and_moved_by_cas(
    repos: Repositories,
) -> None:
    pay: Document = {
        "_id": "pay_1",
        "merchant_id": "m1",
        "order_id": "ord_1",
        "provider": "moyasar",
        "provider_ref": "inv_1",
        "status": "initiated",
        "amount_minor": 28900,
    }
    await repos.payments.create(dict(pay))
    with pytest.raises(DuplicateKey):
        await repos.payments.create(dict(pay))
    assert (await repos.payments.get("m1", "pay_1") or {})["amount_minor"] == 28900
    assert await repos.payments.get("m2", "pay_1") is None
    assert _ids([await repos.payments.by_provider_ref("m1", "moyasar", "inv_1") or {}]) == ["pay_1"]
    assert await repos.payments.by_provider_ref("m2", "moyasar", "inv_1") is None
    assert await repos.payments.by_provider_ref("m1", "tap", "inv_1") is None
    moved = await repos.payments.update("m1", "pay_1", {"status": "paid"}, expected="initiated")
    assert moved is not None and moved["status"] == "paid"
    assert await repos.payments.update("m1", "pay_1", {"status": "x"}, expected="initiated") is None
    assert await repos.payments.update("m2", "pay_1", {"url": "u"}, expected=None) is None
    pay2 = {**pay, "_id": "pay_2", "claim": "", "url": ""}
    await repos.payments.create(pay2)
    assert await repos.payments.claim("m1", "pay_2", "", "t1", 1.0) is True
    assert await repos.payments.claim("m1", "pay_2", "", "t2", 1.0) is False  # taken
    assert await repos.payments.claim("m2", "pay_2", "t1", "t3", 1.0) is False
    assert await repos.payments.claim("m1", "pay_2", "t1", "", 2.0) is True  # released
    await repos.payments.update("m1", "pay_2", {"url": "https://x"}, expected=None)
    assert await repos.payments.claim("m1", "pay_2", "", "t4", 3.0) is False  # has its link
    assert (await repos.payments.update("m1", "pay_1", {"url": "u"}, expected=None) or {})[
        "url"
    ] == "u"


async def test_payment_providers_are_one_per_merchant(repos: Repositories) -> None:
    await repos.payment_providers.put("m1", {"kind": "moyasar", "secrets": {"secret_key": "e1"}})
    await repos.payment_providers.put("m1", {"kind": "tap", "secrets": {"secret_key": "e2"}})
    got = await repos.payment_providers.get("m1")
    assert got is not None and got["kind"] == "tap" and got["merchant_id"] == "m1"
    assert await repos.payment_providers.get("m2") is None


async def test_payment_events_record_once_and_stay_unapplied_until_marked(
    repos: Repositories,
) -> None:
    for n in range(3):
        event = {"_id": f"m1:tap:evt_{n}", "merchant_id": "m1", "status": "paid"}
        assert await repos.payment_events.record(event) is True
    assert await repos.payment_events.record({"_id": "m1:tap:evt_1", "merchant_id": "m1"}) is False
    assert _ids(await repos.payment_events.unapplied(limit=10)) == [
        "m1:tap:evt_0",
        "m1:tap:evt_1",
        "m1:tap:evt_2",
    ]
    await repos.payment_events.mark_applied("m1", "m1:tap:evt_1", 5.0)
    await repos.payment_events.mark_applied("m2", "m1:tap:evt_2", 5.0)  # not m2's: no change
    assert _ids(await repos.payment_events.unapplied(limit=10)) == ["m1:tap:evt_0", "m1:tap:evt_2"]
    stored = await repos.payment_events.get("m1", "m1:tap:evt_1")
    assert stored is not None and stored["state"] == "applied" and stored["status"] == "paid"
    assert await repos.payment_events.get("m2", "m1:tap:evt_1") is None
