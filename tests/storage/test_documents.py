"""Embedded document store: MongoDB semantics we rely on, our hash indexes, and persistence."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.documents import EmbeddedDocumentStore, MongoDocumentStore
from engine.services.ports import DocumentStore, DuplicateKey


@pytest.fixture
def store() -> EmbeddedDocumentStore:
    return EmbeddedDocumentStore(None)


async def test_crud_roundtrip_returns_copies(store: EmbeddedDocumentStore) -> None:
    products = store.collection("products")
    doc = {"merchant_id": "m1", "sku": "a", "price": 10.0, "tags": ["x"]}
    await products.insert_one(doc)
    assert isinstance(doc["_id"], str) and len(doc["_id"]) == 32  # generated uuid4 hex

    doc["price"] = 99.0  # mutating the caller's dict must not reach the store
    found = await products.find_one({"_id": doc["_id"]})
    assert found is not None and found["price"] == 10.0
    found["tags"].append("y")  # nor mutating a returned one
    again = await products.find_one({"_id": doc["_id"]}, {"tags": 1})
    assert again == {"_id": doc["_id"], "tags": ["x"]}

    assert await products.update_one({"_id": doc["_id"]}, {"$set": {"price": 12.5}}) == 1
    assert await products.update_one({"_id": "nope"}, {"$set": {"price": 1}}) == 0
    assert await products.replace_one({"_id": doc["_id"]}, {"merchant_id": "m1", "sku": "a"}) == 1
    replaced = await products.find_one({"sku": "a"})
    assert replaced == {"_id": doc["_id"], "merchant_id": "m1", "sku": "a"}
    assert await products.count_documents({"merchant_id": "m1"}) == 1
    assert await products.delete_one({"_id": doc["_id"]}) == 1
    assert await products.delete_one({"_id": doc["_id"]}) == 0
    assert await products.find_one({"_id": doc["_id"]}) is None


async def test_unique_index_raises_port_error(store: EmbeddedDocumentStore) -> None:
    c = store.collection("channels")
    await c.create_index([("merchant_id", 1), ("sku", 1)], unique=True, name="m_sku")
    await c.insert_one({"_id": "1", "merchant_id": "m1", "sku": "a"})
    await c.insert_one({"_id": "2", "merchant_id": "m2", "sku": "a"})  # other tenant: fine
    with pytest.raises(DuplicateKey):
        await c.insert_one({"_id": "3", "merchant_id": "m1", "sku": "a"})
    with pytest.raises(DuplicateKey):
        await c.insert_one({"_id": "1", "merchant_id": "m9", "sku": "z"})  # duplicate _id
    # An update that would collide is rejected and rolled back.
    await c.insert_one({"_id": "4", "merchant_id": "m1", "sku": "b"})
    with pytest.raises(DuplicateKey):
        await c.update_one({"_id": "4"}, {"$set": {"sku": "a"}})
    assert (await c.find_one({"_id": "4"}) or {})["sku"] == "b"
    # After the rollback the index still knows "b" is taken and "a" belongs to _id 1.
    with pytest.raises(DuplicateKey):
        await c.insert_one({"merchant_id": "m1", "sku": "b"})
    await c.delete_one({"_id": "1"})
    await c.insert_one({"_id": "5", "merchant_id": "m1", "sku": "a"})  # freed by the delete
    with pytest.raises(DuplicateKey):
        await c.find_one_and_update(
            {"merchant_id": "m1", "sku": "new"}, {"$set": {"sku": "a"}}, upsert=True
        )
    # A missing field counts as null: two docs without `sku` collide, as in MongoDB.
    await c.insert_one({"_id": "6", "merchant_id": "m3"})
    with pytest.raises(DuplicateKey):
        await c.insert_one({"_id": "7", "merchant_id": "m3"})
    # Creating a unique index over existing duplicates fails too.
    await c.insert_one({"_id": "8", "merchant_id": "m8", "name": "x"})
    await c.insert_one({"_id": "9", "merchant_id": "m9", "name": "x"})
    with pytest.raises(DuplicateKey):
        await c.create_index([("name", 1)], unique=True)


async def test_sort_skip_limit_projection(store: EmbeddedDocumentStore) -> None:
    c = store.collection("messages")
    await c.create_index([("merchant_id", 1), ("ts", 1)])
    for i in range(10):
        await c.insert_one({"_id": f"m{i}", "merchant_id": "m1", "ts": float(i), "n": i % 3})
    await c.insert_one({"_id": "other", "merchant_id": "m2", "ts": 100.0, "n": 0})

    page = await c.find({"merchant_id": "m1"}, sort=[("ts", -1)], skip=2, limit=3)
    assert [d["_id"] for d in page] == ["m7", "m6", "m5"]
    multi = await c.find({"merchant_id": "m1"}, sort=[("n", 1), ("ts", -1)], limit=4)
    assert [d["_id"] for d in multi] == ["m9", "m6", "m3", "m0"]
    projected = await c.find(
        {"merchant_id": "m1", "ts": {"$gte": 8}}, projection={"_id": 0, "ts": 1}
    )
    assert sorted(d["ts"] for d in projected) == [8.0, 9.0]
    assert await c.find({"merchant_id": "m1", "ts": 3.0, "n": 0}) == [
        {"_id": "m3", "merchant_id": "m1", "ts": 3.0, "n": 0}
    ]
    ids = await c.find({"_id": {"$in": ["m1", "m2", "other"]}, "merchant_id": "m1"})
    assert [d["_id"] for d in ids] == ["m1", "m2"]


async def test_find_one_and_update_upsert_operators(store: EmbeddedDocumentStore) -> None:
    c = store.collection("conversations")
    update = {
        "$inc": {"turns": 1},
        "$set": {"last_ts": 1.5},
        "$setOnInsert": {"created_ts": 1.0},
    }
    first = await c.find_one_and_update({"merchant_id": "m1", "user": "u1"}, update, upsert=True)
    assert first is not None
    assert first["turns"] == 1 and first["created_ts"] == 1.0 and first["user"] == "u1"
    assert isinstance(first["_id"], str) and len(first["_id"]) == 32  # never an ObjectId

    update2 = {"$inc": {"turns": 1}, "$set": {"last_ts": 2.5}, "$setOnInsert": {"created_ts": 9.0}}
    second = await c.find_one_and_update({"merchant_id": "m1", "user": "u1"}, update2, upsert=True)
    assert second is not None
    assert second["_id"] == first["_id"] and second["turns"] == 2
    assert second["created_ts"] == 1.0 and second["last_ts"] == 2.5  # setOnInsert ignored

    assert await c.find_one_and_update({"user": "ghost"}, {"$set": {"x": 1}}) is None
    pinned = await c.find_one_and_update({"_id": "given"}, {"$inc": {"n": 1}}, upsert=True)
    assert pinned is not None and pinned["_id"] == "given"

    assert (
        await c.update_one({"merchant_id": "m2", "user": "u"}, {"$set": {"a": 1}}, upsert=True) == 1
    )
    made = await c.find_one({"merchant_id": "m2"})
    assert made is not None and isinstance(made["_id"], str) and len(made["_id"]) == 32
    assert await c.replace_one({"user": "r"}, {"merchant_id": "m3", "user": "r"}, upsert=True) == 1
    replaced = await c.find_one({"user": "r"})
    assert replaced is not None and isinstance(replaced["_id"], str)
    # A second upserting replace keeps the existing _id (no immutable-_id error).
    assert (
        await c.replace_one({"user": "r"}, {"merchant_id": "m3", "user": "r", "v": 2}, upsert=True)
        == 1
    )
    assert (await c.find_one({"user": "r"})) == {**replaced, "v": 2}


async def test_tenant_filter_isolation(store: EmbeddedDocumentStore) -> None:
    c = store.collection("orders")
    await c.create_index([("merchant_id", 1), ("status", 1)])
    for merchant in ("m1", "m2"):
        for i in range(5):
            await c.insert_one({"merchant_id": merchant, "status": "open" if i % 2 else "paid"})
    for merchant in ("m1", "m2"):
        docs = await c.find({"merchant_id": merchant})
        assert len(docs) == 5 and {d["merchant_id"] for d in docs} == {merchant}
        assert await c.count_documents({"merchant_id": merchant, "status": "open"}) == 2
    assert await c.delete_many({"merchant_id": "m1", "status": "paid"}) == 3
    assert await c.count_documents({"merchant_id": "m2"}) == 5  # untouched
    await c.update_one({"merchant_id": "m1"}, {"$set": {"merchant_id": "m3"}})  # moves index key
    assert await c.count_documents({"merchant_id": "m3"}) == 1
    assert await c.count_documents({"merchant_id": "m1"}) == 1


async def test_array_fields_still_match_through_indexes(store: EmbeddedDocumentStore) -> None:
    """Equality on an array field matches any element; the hash index must not hide that."""
    c = store.collection("products_tags")
    await c.create_index([("tags", 1)])
    await c.insert_one({"_id": "a", "tags": ["red", "blue"]})
    await c.insert_one({"_id": "b", "tags": "red"})
    await c.insert_one({"_id": "c", "meta": {"color": "red"}})
    assert {d["_id"] for d in await c.find({"tags": "red"})} == {"a", "b"}
    await c.create_index([("meta.color", 1)])
    assert [d["_id"] for d in await c.find({"meta.color": "red"})] == ["c"]


async def test_rejects_values_a_snapshot_cannot_restore(store: EmbeddedDocumentStore) -> None:
    c = store.collection("bad")
    with pytest.raises(ValueError):
        await c.insert_one({"x": float("nan")})
    with pytest.raises(TypeError):
        await c.insert_one({"x": {1, 2}})
    with pytest.raises(TypeError):
        await c.update_one({"_id": "a"}, {"$set": {"x": object()}}, upsert=True)
    assert await c.count_documents({}) == 0


async def test_persistence_across_close_and_reopen(tmp_path: Path) -> None:
    when = dt.datetime(2025, 1, 2, 3, 4, 5, 678000)
    first = EmbeddedDocumentStore(tmp_path)
    c = first.collection("merchants")
    await c.create_index([("slug", 1)], unique=True, name="slug_unique")
    docs: list[dict[str, Any]] = [
        {"_id": "m1", "slug": "acme", "created_ts": 1735787045.678, "n": 2**53 + 1, "ok": True},
        {"_id": "m2", "slug": "beta", "nested": {"a": [1, 2.5, None, "x"]}, "when": when},
        {"_id": "m3", "slug": "gamma", "raw": b"\x00\xff", "unicode": "كليم ✓"},
    ]
    for doc in docs:
        await c.insert_one(dict(doc))
    await first.collection("other/name").insert_one({"_id": "o", "v": 1})
    await first.close()

    second = EmbeddedDocumentStore(tmp_path)
    c2 = second.collection("merchants")
    assert await c2.find({}, sort=[("_id", 1)]) == docs  # exact types and values
    assert await second.collection("other/name").find_one({"_id": "o"}) == {"_id": "o", "v": 1}
    with pytest.raises(DuplicateKey):  # the unique index came back
        await c2.insert_one({"slug": "acme"})
    await c2.update_one({"_id": "m1"}, {"$inc": {"n": 1}})
    await second.close()

    third = EmbeddedDocumentStore(tmp_path)
    assert (await third.collection("merchants").find_one({"_id": "m1"}) or {})["n"] == 2**53 + 2
    await third.close()


async def test_writes_after_last_flush_are_lost_without_close(tmp_path: Path) -> None:
    """The documented non-durability: only flushed state survives an unclean stop."""
    first = EmbeddedDocumentStore(tmp_path)
    c = first.collection("c")
    await c.insert_one({"_id": "kept"})
    await first.flush()
    await c.insert_one({"_id": "lost"})  # no flush: simulates a crash
    reopened = EmbeddedDocumentStore(tmp_path)
    assert [d["_id"] for d in await reopened.collection("c").find({})] == ["kept"]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temp files left


async def test_autoflush_writes_periodically_and_close_cancels(tmp_path: Path) -> None:
    s = EmbeddedDocumentStore(tmp_path)
    task = s.start_autoflush(0.02)
    await s.collection("c").insert_one({"_id": "x"})
    snapshot = tmp_path / "c.coll.json"
    for _ in range(100):
        if await asyncio.to_thread(snapshot.exists):
            break
        await asyncio.sleep(0.01)
    assert await asyncio.to_thread(snapshot.exists)  # written by the task, before close()
    await s.close()
    assert task.done()


async def test_indexed_lookups_stay_fast(store: EmbeddedDocumentStore) -> None:
    """Plain mongomock scans per query and per unique check (20k inserts took 318 s)."""
    c = store.collection("perf")
    await c.create_index([("merchant_id", 1), ("sku", 1)], unique=True)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(5000):
        await c.insert_one({"merchant_id": f"m{i % 10}", "sku": str(i)})
    assert loop.time() - started < 10
    started = loop.time()
    for i in range(200):
        assert await c.find_one({"merchant_id": f"m{i % 10}", "sku": str(i)}) is not None
    assert (loop.time() - started) / 200 < 0.005


async def test_mongo_adapter_constructs_without_io() -> None:
    mongo = MongoDocumentStore("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200", "kaleem")
    typed: DocumentStore = mongo
    assert typed.collection("x") is typed.collection("x")
    with pytest.raises(Exception):  # noqa: B017 - any driver error: nothing listens there
        await mongo.ping()
    await mongo.close()


async def test_bulk_upsert_inserts_and_updates_and_survives_a_restart(tmp_path: Path) -> None:
    first = EmbeddedDocumentStore(tmp_path)
    products = first.collection("products")
    await products.insert_one({"_id": "m1:a", "merchant_id": "m1", "sku": "a", "price": 1.0})
    ops = [
        ({"_id": "m1:a", "merchant_id": "m1"}, {"$set": {"price": 2.0}}),
        ({"_id": "m1:b", "merchant_id": "m1"}, {"$set": {"sku": "b", "price": 3.0}}),
    ]
    assert await products.bulk_upsert(ops) == 2
    assert await products.bulk_upsert([]) == 0
    await first.close()
    reopened = EmbeddedDocumentStore(tmp_path).collection("products")
    found = await reopened.find({"merchant_id": "m1"}, sort=[("_id", 1)])
    assert [(d["_id"], d["price"]) for d in found] == [("m1:a", 2.0), ("m1:b", 3.0)]
    assert found[1]["sku"] == "b"
