"""Ordered indexes of the embedded document store: same answers as the unindexed path.

Every query runs twice - on a store with the indexes declared and on one without (plain
mongomock scan + sort) - over randomized documents with mixed types, nulls, missing fields and
arrays, after inserts, updates that move documents within the order, and deletes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.documents import EmbeddedDocumentStore
from engine.services.ports import Document

INDEXES: list[list[tuple[str, int]]] = [
    [("m", 1), ("at", -1)],
    [("m", 1), ("status", 1), ("at", -1)],
    [("m", 1), ("labels", 1), ("at", -1)],
    [("m", 1), ("_id", 1)],
]

scalars = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False, width=16),
    st.sampled_from(["a", "b", "c"]),
    st.booleans(),
)
docs_st = st.lists(
    st.fixed_dictionaries(
        {
            "m": st.sampled_from(["m1", "m2"]),
            "status": st.one_of(st.none(), st.sampled_from(["open", "pending", 1, True])),
            "at": scalars,
            "labels": st.lists(st.sampled_from(["vip", "new", "x"]), max_size=3),
        },
        optional={"drop": st.sampled_from(["at", "status", "labels"])},
    ),
    max_size=40,
)
ops = st.sampled_from(["$gt", "$gte", "$lt", "$lte"])
query_st = st.fixed_dictionaries(
    {
        "m": st.sampled_from(["m1", "m2"]),
        "extra": st.one_of(
            st.just({}),
            st.fixed_dictionaries({"status": st.sampled_from(["open", "pending", None, 1])}),
            st.fixed_dictionaries({"labels": st.sampled_from(["vip", "new"])}),
        ),
        "range": st.one_of(st.none(), st.tuples(ops, scalars)),
        "keyset": st.one_of(st.none(), st.tuples(st.sampled_from(["$lt", "$gt"]), scalars)),
        "direction": st.sampled_from([1, -1]),
        "limit": st.integers(0, 7),
        "skip": st.integers(0, 3),
    }
)


def _doc(n: int, raw: dict[str, Any]) -> Document:
    doc = {"_id": f"d{n:03d}", **{k: v for k, v in raw.items() if k != "drop"}}
    doc.pop(raw.get("drop", ""), None)
    return doc


def _query(q: dict[str, Any], ids: list[str]) -> tuple[Document, list[tuple[str, int]]]:
    filter: Document = {"m": q["m"], **q["extra"]}
    if q["range"] is not None:
        filter["at"] = {q["range"][0]: q["range"][1]}
    if q["keyset"] is not None and ids:
        op, value = q["keyset"]
        last = ids[len(ids) // 2]
        after = {"$or": [{"at": {op: value}}, {"at": value, "_id": {op: last}}]}
        filter = {"$and": [filter, after]}
    d = q["direction"]
    return filter, [("at", d), ("_id", d)]


async def _both(path: Path | None = None) -> tuple[EmbeddedDocumentStore, EmbeddedDocumentStore]:
    indexed, plain = EmbeddedDocumentStore(path), EmbeddedDocumentStore(None)
    for keys in INDEXES:
        await indexed.collection("c").create_index(keys)
    return indexed, plain


async def _same_answers(
    indexed: EmbeddedDocumentStore, plain: EmbeddedDocumentStore, queries: list[dict[str, Any]]
) -> None:
    ids = sorted(d["_id"] for d in await plain.collection("c").find({}))
    for q in queries:
        filter, sort = _query(q, ids)
        kwargs: dict[str, Any] = {"sort": sort, "limit": q["limit"], "skip": q["skip"]}
        got = await indexed.collection("c").find(filter, **kwargs)
        want = await plain.collection("c").find(filter, **kwargs)
        assert got == want, (filter, sort)
        eq = {"m": q["m"], **q["extra"]}
        assert await indexed.collection("c").count_documents(eq) == len(
            await plain.collection("c").find(eq)
        )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=docs_st,
    moves=st.lists(st.tuples(st.integers(0, 39), scalars), max_size=10),
    deletes=st.lists(st.integers(0, 39), max_size=8),
    queries=st.lists(query_st, min_size=1, max_size=6),
)
def test_ordered_index_answers_like_a_scan(
    docs: list[dict[str, Any]],
    moves: list[tuple[int, Any]],
    deletes: list[int],
    queries: list[dict[str, Any]],
) -> None:
    async def run() -> None:
        indexed, plain = await _both()
        half = len(docs) // 2
        for n, raw in enumerate(docs[:half]):  # some before, some after the index exists
            await plain.collection("c").insert_one(_doc(n, raw))
            await indexed.collection("c").insert_one(_doc(n, raw))
        for n, raw in enumerate(docs[half:], start=half):
            await plain.collection("c").insert_one(_doc(n, raw))
            await indexed.collection("c").insert_one(_doc(n, raw))
        await _same_answers(indexed, plain, queries)
        for n, at in moves:  # updates move documents within the order
            for store in (indexed, plain):
                await store.collection("c").update_one({"_id": f"d{n:03d}"}, {"$set": {"at": at}})
        for n in deletes:
            for store in (indexed, plain):
                await store.collection("c").delete_one({"_id": f"d{n:03d}"})
        await _same_answers(indexed, plain, queries)

    asyncio.run(run())


def _shapes(m: str) -> list[tuple[Document, list[tuple[str, int]]]]:
    """The admin API's list queries (engine/api/paging.py) as they reach the store."""
    keyset = {"$or": [{"at": {"$lt": 50.0}}, {"at": 50.0, "_id": {"$lt": "d050"}}]}
    return [
        ({"m": m}, [("at", -1), ("_id", -1)]),
        ({"m": m, **keyset}, [("at", -1), ("_id", -1)]),
        ({"m": m, "status": "pending", **keyset}, [("at", -1), ("_id", -1)]),
        ({"m": m, "status": "pending", "labels": "vip"}, [("at", -1), ("_id", -1)]),
        ({"m": m, "_id": {"$gt": "d010"}}, [("_id", 1)]),
        (
            {"$and": [{"m": m, "$or": [{"t": {"$regex": "x"}}]}, keyset]},
            [("at", -1), ("_id", -1)],
        ),
    ]


async def test_api_shaped_queries_walk_an_index_and_match(tmp_path: Path) -> None:
    indexed, plain = await _both(tmp_path)
    for n in range(120):
        doc = {
            "_id": f"d{n:03d}",
            "m": "m1" if n % 4 else "m2",
            "status": ("open", "pending")[n % 2],
            "labels": ["vip"] if n % 5 == 0 else [],
            "at": float(n % 60),  # ties on `at`: broken by _id
            "t": "x" if n % 3 else "y",
        }
        await indexed.collection("c").insert_one(dict(doc))
        await plain.collection("c").insert_one(doc)

    async def check(store: EmbeddedDocumentStore) -> None:
        raw = store._get("c")._c
        for filter, sort in _shapes("m1"):
            assert raw.plan(filter, sort) is not None, filter  # answered from an index
            for limit in (0, 1, 5, 21):
                got = await store.collection("c").find(filter, sort=sort, limit=limit)
                want = await plain.collection("c").find(filter, sort=sort, limit=limit)
                assert got == want
                assert got, filter
        assert await store.collection("c").count_documents({"m": "m1"}) == 90
        assert await store.collection("c").count_documents({"m": "m1", "labels": "vip"}) == 18

    await check(indexed)
    await indexed.close()
    reopened = EmbeddedDocumentStore(tmp_path)  # indexes come back from the snapshot
    await check(reopened)
    await reopened.close()


async def test_keyset_pages_cover_everything_once_under_updates() -> None:
    store = EmbeddedDocumentStore(None)
    c = store.collection("c")
    await c.create_index([("m", 1), ("at", -1)])
    for n in range(50):
        await c.insert_one({"_id": f"d{n:03d}", "m": "m1", "at": float(n // 3)})
    await c.update_one({"_id": "d049"}, {"$set": {"at": -1.0}})  # moves to the end
    seen: list[str] = []
    last: tuple[Any, str] | None = None
    while True:
        filter: Document = {"m": "m1"}
        if last is not None:
            filter["$or"] = [{"at": {"$lt": last[0]}}, {"at": last[0], "_id": {"$lt": last[1]}}]
        docs = await c.find(filter, sort=[("at", -1), ("_id", -1)], limit=7)
        if not docs:
            break
        seen += [d["_id"] for d in docs]
        last = (docs[-1]["at"], docs[-1]["_id"])
    assert len(seen) == len(set(seen)) == 50
    assert seen[-1] == "d049" and seen[0] == "d048"


async def test_unorderable_values_fall_back_to_the_scan() -> None:
    store = EmbeddedDocumentStore(None)
    c = store.collection("c")
    await c.create_index([("m", 1), ("at", 1)])
    await c.insert_one({"_id": "a", "m": "m1", "at": {"nested": 1}})
    await c.insert_one({"_id": "b", "m": "m1", "at": 2})
    assert store._get("c")._c.plan({"m": "m1"}, [("at", 1)]) is None
    docs = await c.find({"m": "m1"}, sort=[("at", 1)])
    assert [d["_id"] for d in docs] == ["b", "a"]  # numbers before subdocuments
    await c.delete_one({"_id": "a"})
    assert store._get("c")._c.plan({"m": "m1"}, [("at", 1)]) is not None
