"""The SQLite record store itself: answers equal a scan, list queries walk an index, data
survives a reopen, a failing write in a group fails alone, and processes share the file.

The property test compares every keyset page the store answers with a plain Python scan + sort
over the same records (ties, nulls, missing fields, arrays, updates that move records in the
order, deletes), so an index can never hide or duplicate a record.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.repositories import SCHEMA, sqlite_repositories
from engine.adapters.sqlite import SqliteTables
from engine.adapters.tables import Has, IndexSpec, Order, Range, TableSpec, Where, get_path
from engine.services.ports import Document, DuplicateKey
from engine.services.repositories import ConversationFilter

ROOT = Path(__file__).resolve().parents[2]

TEST_TABLE = TableSpec(
    "c",
    (
        IndexSpec(("m", "at")),
        IndexSpec(("m", "status", "at")),
        IndexSpec(("m", "labels", "at")),
        IndexSpec(("m", "_id")),
    ),
    arrays=frozenset({"labels"}),
)

numbers = st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.5, 2.0, 2.5]))
docs_st = st.lists(
    st.fixed_dictionaries(
        {
            "m": st.sampled_from(["m1", "m2"]),
            "status": st.one_of(st.none(), st.sampled_from(["open", "pending"])),
            "at": st.one_of(st.none(), numbers),
            "labels": st.lists(st.sampled_from(["vip", "new", "x"]), max_size=3, unique=True),
        },
        optional={"drop": st.sampled_from(["at", "status", "labels"])},
    ),
    max_size=40,
)
query_st = st.fixed_dictionaries(
    {
        "m": st.sampled_from(["m1", "m2"]),
        "extra": st.sampled_from(
            [{}, {"status": "open"}, {"status": "pending"}, {"status": None}, {"labels": "vip"}]
        ),
        "range": st.one_of(
            st.none(), st.tuples(st.sampled_from(["gt", "gte", "lt", "lte"]), numbers)
        ),
        "order": st.sampled_from([("at", False), ("at", True), ("_id", False), ("_id", True)]),
        "after": st.one_of(
            st.none(),
            st.tuples(st.integers(0, 39)),  # the keyset of an existing record
            st.tuples(st.one_of(st.none(), numbers), st.integers(0, 39)),  # any value
        ),
        "limit": st.integers(1, 7),
    }
)


def _doc(n: int, raw: dict[str, Any]) -> Document:
    doc = {"_id": f"d{n:03d}", **{k: v for k, v in raw.items() if k != "drop"}}
    doc.pop(raw.get("drop", ""), None)
    return doc


def _where(q: dict[str, Any]) -> Where:
    where: dict[str, Any] = {"m": q["m"]}
    for name, value in q["extra"].items():
        where[name] = Has(value) if name == "labels" else value
    if q["range"] is not None:
        op, bound = q["range"]
        where["at"] = Range(**{op: bound})
    return where


def _passes(doc: Document, where: Where) -> bool:
    for name, cond in where.items():
        value = get_path(doc, name)
        if isinstance(cond, Has):
            if not (cond.value in value if isinstance(value, list) else value == cond.value):
                return False
        elif isinstance(cond, Range):
            if not isinstance(value, int | float):
                return False  # SQL: a comparison with NULL is not true
            for op, bound in (
                ("gt", cond.gt),
                ("gte", cond.gte),
                ("lt", cond.lt),
                ("lte", cond.lte),
            ):
                if bound is None:
                    continue
                ok = {
                    "gt": value > bound,
                    "gte": value >= bound,
                    "lt": value < bound,
                    "lte": value <= bound,
                }[op]
                if not ok:
                    return False
        elif value != cond:
            return False
    return True


def _after_keyset(doc: Document, order: Order, after: tuple[Any, str]) -> bool:
    """The gateway's keyset rule, spelled out: strictly after (value, id), nulls lowest."""
    value, last = after
    own = doc.get(order.field) if order.field != "_id" else None
    rid = doc["_id"]
    if order.field == "_id":
        return rid < last if order.descending else rid > last
    if value is None:
        if order.descending:
            return own is None and rid < last
        return own is not None or rid > last
    if own is None:
        return False
    if order.descending:
        return own < value or (own == value and rid < last)
    return own > value or (own == value and rid > last)


def _scan(
    docs: list[Document], where: Where, order: Order, after: tuple[Any, str] | None, limit: int
) -> list[str]:
    hits = [d for d in docs if _passes(d, where)]
    if after is not None:
        hits = [d for d in hits if _after_keyset(d, order, after)]

    def key(d: Document) -> tuple[Any, ...]:
        if order.field == "_id":
            return (d["_id"],)
        value = d.get(order.field)
        return ((0, 0) if value is None else (1, value), d["_id"])

    hits.sort(key=key, reverse=order.descending)
    return [d["_id"] for d in hits[:limit]]


async def _same_answers(store: SqliteTables, docs: list[Document], queries: list[Any]) -> None:
    for q in queries:
        where = _where(q)
        order = Order(*q["order"])
        after: tuple[Any, str] | None = None
        if q["after"] is not None:
            if len(q["after"]) == 1:
                if not docs:
                    continue
                pick = docs[q["after"][0] % len(docs)]
                after = (None if order.field == "_id" else pick.get(order.field), pick["_id"])
            else:
                after = (None if order.field == "_id" else q["after"][0], f"d{q['after'][1]:03d}")
        got = await store.page("c", where, order=order, limit=q["limit"], after=after)
        assert [d["_id"] for d in got] == _scan(docs, where, order, after, q["limit"]), (q, after)
        assert await store.count("c", where) == len(_scan(docs, where, order, None, 10**6))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=docs_st,
    moves=st.lists(st.tuples(st.integers(0, 39), st.one_of(st.none(), numbers)), max_size=8),
    deletes=st.lists(st.integers(0, 39), max_size=6),
    queries=st.lists(query_st, min_size=1, max_size=6),
)
def test_indexed_pages_answer_like_a_scan(
    raw: list[dict[str, Any]],
    moves: list[tuple[int, Any]],
    deletes: list[int],
    queries: list[dict[str, Any]],
) -> None:
    async def run(path: Path) -> None:
        store = SqliteTables(path, [TEST_TABLE])
        docs = [_doc(n, r) for n, r in enumerate(raw)]
        try:
            for doc in docs:
                await store.insert("c", doc)
            await _same_answers(store, docs, queries)
            by_id = {d["_id"]: d for d in docs}
            for n, at in moves:  # updates move records within the order
                record_id = f"d{n:03d}"
                if record_id in by_id:
                    await store.patch("c", record_id, changes={"at": at})
                    by_id[record_id]["at"] = at
            for n in deletes:
                assert await store.delete("c", f"d{n:03d}") == (
                    by_id.pop(f"d{n:03d}", None) is not None
                )
            await _same_answers(store, list(by_id.values()), queries)
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "t.sqlite3"))


async def test_keyset_pages_cover_everything_once_while_records_move(tmp_path: Path) -> None:
    store = SqliteTables(tmp_path / "t.sqlite3", [TEST_TABLE])
    for n in range(50):
        await store.insert("c", {"_id": f"d{n:03d}", "m": "m1", "at": float(n // 3)})
    await store.patch("c", "d049", changes={"at": -1.0})  # moves to the end
    order = Order("at", descending=True)
    seen: list[str] = []
    after: tuple[Any, str] | None = None
    while docs := await store.page("c", {"m": "m1"}, order=order, limit=7, after=after):
        seen += [d["_id"] for d in docs]
        after = (docs[-1]["at"], docs[-1]["_id"])
    assert len(seen) == len(set(seen)) == 50
    assert seen[0] == "d048" and seen[-1] == "d049"
    await store.close()


async def test_the_list_queries_walk_an_index_without_sorting(tmp_path: Path) -> None:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    store = repos.store
    assert isinstance(store, SqliteTables)
    await repos.conversations.touch("m1", {"conversation_key": "m1:c:1", "at": 1.0})
    newest = Order("last_message_at", descending=True)
    shapes: list[tuple[str, Where, Order]] = [
        ("products", {"merchant_id": "m"}, Order()),
        ("products", {"merchant_id": "m", "category": "tea"}, Order()),
        ("conversations", {"merchant_id": "m"}, newest),
        ("conversations", {"merchant_id": "m", "status": "open"}, newest),
        ("conversations", {"merchant_id": "m", "channel_id": "tg"}, newest),
        ("conversations", {"merchant_id": "m", "assignee": "u"}, newest),
        ("conversations", {"merchant_id": "m", "labels": Has("vip")}, newest),
        ("messages", {"merchant_id": "m", "conversation_key": "k"}, Order("at", True)),
        ("orders", {"merchant_id": "m", "status": "new"}, Order("created_at", True)),
        ("carts", {"merchant_id": "m", "channel_id": "tg"}, Order("updated_at", True)),
        ("users", {"merchant_id": "m"}, Order("created_at", True)),
        ("audit", {"merchant_id": "m"}, Order("_id", True)),
        ("products", {"index_state": "pending"}, Order()),
    ]
    for table, where, order in shapes:
        for after in (None, (None if order.field == "_id" else 5.0, "x")):
            plan = " | ".join(await store.plan(table, where, order=order, after=after))
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (table, where, plan)
            assert "TEMP B-TREE" not in plan, (table, where, plan)
    # The unique keys the product relies on are indexes too (a lookup, not a scan).
    for table, where in [
        ("users", {"email": "a@b.c"}),
        ("api_keys", {"key_hash": "h"}),
        ("merchants", {"api_key_hash": "h"}),
        ("products", {"merchant_id": "m", "sku": "s"}),
    ]:
        plan = " | ".join(await store.plan(table, where, order=Order()))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (table, plan)
    await repos.close()


async def test_records_survive_close_and_reopen_exactly(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    first = sqlite_repositories(path)
    merchant = {
        "_id": "m1",
        "name": "كليم ✓",
        "default_language": "ar",
        "api_key_hash": "h1",
        "created_at": 1735787045.678,
        "n": 2**53 + 1,
        "ok": True,
        "nested": {"a": [1, 2.5, None, "x"]},
    }
    await first.merchants.create(dict(merchant))
    await first.close()
    with pytest.raises(RuntimeError):
        await first.merchants.get("m1")  # closed: reads and writes refuse, never hang
    with pytest.raises(RuntimeError):
        await first.merchants.delete("m1")

    second = sqlite_repositories(path)
    assert await second.merchants.get("m1") == merchant  # exact types and values
    with pytest.raises(DuplicateKey):  # the unique index is on disk, not in memory
        await second.merchants.create({**merchant, "_id": "m2"})
    await second.close()


async def test_a_failing_write_fails_alone_in_its_group(tmp_path: Path) -> None:
    repos = sqlite_repositories(tmp_path / "records.sqlite3")
    await repos.orders.create({"_id": "taken", "merchant_id": "m1", "created_at": 0.0})

    async def create(n: int) -> str:
        order_id = "taken" if n == 17 else f"ord_{n:03d}"
        try:
            await repos.orders.create({"_id": order_id, "merchant_id": "m1", "created_at": 1.0})
        except DuplicateKey:
            return "duplicate"
        return "ok"

    # Many writes at once: the writer thread groups them into few transactions.
    results = await asyncio.gather(*(create(n) for n in range(60)))
    assert results.count("duplicate") == 1 and results[17] == "duplicate"
    page = await repos.orders.page("m1", status=None, phone=None, limit=100, after=None)
    assert len(page.items) == 60  # 59 new + the one that was there
    await repos.close()


_WORKER = """
import asyncio, sys
from pathlib import Path
from engine.adapters.repositories import sqlite_repositories

async def main(path, name, n):
    repos = sqlite_repositories(Path(path))
    async def one(i):
        await repos.gaps.bump("m1", "m1:shared", "q", {"by": name}, float(i + 1))
        key = f"m1:tg:{name}-{i % 7}"
        await repos.conversations.touch("m1", {"conversation_key": key, "at": float(i + 1)})
    await asyncio.gather(*(one(i) for i in range(n)))
    await repos.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_processes_share_the_file_and_counters_stay_exact(tmp_path: Path) -> None:
    """Two processes open a fresh file at once and bump the same counters concurrently: every
    read-modify-write is atomic across processes (BEGIN IMMEDIATE), so nothing is lost."""
    path = tmp_path / "records.sqlite3"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), name, "150"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()

    async def check() -> None:
        repos = sqlite_repositories(path)
        top = await repos.gaps.top("m1", limit=5)
        assert [d["count"] for d in top] == [300]
        convs = await repos.conversations.page("m1", ConversationFilter(), limit=50, after=None)
        assert len(convs.items) == 14
        assert sum(int(c["message_count"]) for c in convs.items) == 300
        await repos.close()

    asyncio.run(check())


def test_schema_declares_every_table_once() -> None:
    names = [t.name for t in SCHEMA]
    assert len(names) == len(set(names))
    for spec in SCHEMA:
        assert len({i.name for i in spec.indexes}) == len(spec.indexes), spec.name
