"""The production record store: MongoDB through PyMongo's native async API.

``motor`` is deprecated upstream; ``pymongo.AsyncMongoClient`` has the same call shapes. This
module is the only place that spells MongoDB's operators: it translates the table gateway's
vocabulary (``engine.adapters.tables``) into filters and updates, and the contract suite runs
the same repository tests against it (on ``mongomock_motor``) and against SQLite.

Every patch is one ``find_one_and_update`` (MongoDB's single-document atomicity is what the
compare-and-set and counter queries need); bulk upserts are one unordered ``bulk_write``.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Unpack

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from engine.adapters.tables import (
    MAX_PAGE,
    Change,
    Has,
    Match,
    Order,
    PageFrom,
    Range,
    TableSpec,
    Text,
    Where,
    check_field,
    check_storable,
)
from engine.services.ports import Document, DuplicateKey

__all__ = ["MongoTables"]

log = logging.getLogger(__name__)
# An index on the same keys exists under another name (one an older release created): the
# database already has what the queries need.
_INDEX_EXISTS_UNDER_ANOTHER_NAME = 85


@contextmanager
def _duplicates() -> Iterator[None]:
    try:
        yield
    except DuplicateKeyError as exc:
        raise DuplicateKey(str(exc)) from exc
    except BulkWriteError as exc:
        if any(e.get("code") == 11000 for e in exc.details.get("writeErrors", [])):
            raise DuplicateKey(str(exc)) from exc
        raise


def _filter(where: Where, text: Text | None = None, keyset: Document | None = None) -> Document:
    plain: Document = {}
    for name, cond in where.items():
        check_field(name)
        if isinstance(cond, Range):
            bounds = {
                op: bound
                for op, bound in (
                    ("$lt", cond.lt),
                    ("$lte", cond.lte),
                    ("$gt", cond.gt),
                    ("$gte", cond.gte),
                )
                if bound is not None
            }
            plain[name] = bounds
        elif isinstance(cond, Has):
            plain[name] = cond.value  # equality on an array field matches any element
        else:
            plain[name] = cond
    more: list[Document] = []
    if text is not None and text.fields:
        pattern = re.escape(text.needle)
        more.append(
            {
                "$or": [
                    {f: {"$regex": pattern, "$options": "i"}} for f in map(check_field, text.fields)
                ]
            }
        )
    if keyset is not None:
        more.append(keyset)
    if not more:
        return plain
    return {"$and": [plain, *more]} if plain else ({"$and": more} if len(more) > 1 else more[0])


def _keyset(order: Order, after: tuple[Any, str]) -> Document:
    value, last = after
    op = "$lt" if order.descending else "$gt"
    if order.field == "_id":
        return {"_id": {op: last}}
    f = check_field(order.field)
    if value is None:  # nulls sort lowest
        if order.descending:
            return {f: None, "_id": {"$lt": last}}
        return {"$or": [{f: None, "_id": {"$gt": last}}, {f: {"$ne": None}}]}
    return {"$or": [{f: {op: value}}, {f: value, "_id": {op: last}}]}


def _sort(order: Order) -> list[tuple[str, int]]:
    direction = -1 if order.descending else 1
    if order.field == "_id":
        return [("_id", direction)]
    then = [(check_field(order.then), direction)] if order.then else []
    return [(check_field(order.field), direction), *then, ("_id", direction)]


def _bounded(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
    return limit


def _conflicts(path: str, taken: set[str]) -> bool:
    return any(path == t or path.startswith(t + ".") or t.startswith(path + ".") for t in taken)


class MongoTables:
    """``engine.adapters.tables.Tables`` on one MongoDB database.

    Construction performs no I/O (the client connects on first use); :meth:`ensure_schema`
    creates the declared indexes.
    """

    def __init__(
        self, database: Any, schema: Sequence[TableSpec], *, client: Any | None = None
    ) -> None:
        self._db = database
        self._client = client
        self._specs = {t.name: t for t in schema}

    @classmethod
    def connect(cls, url: str, db: str, schema: Sequence[TableSpec]) -> MongoTables:
        client: AsyncMongoClient[Document] = AsyncMongoClient(url, connect=False, tz_aware=False)
        return cls(client[db], schema, client=client)

    def _c(self, table: str) -> Any:
        if table not in self._specs:
            raise ValueError(f"undeclared table {table!r}")
        return self._db[table]

    async def ping(self) -> None:
        """Raises if the server is unreachable (readiness)."""
        await self._db.command("ping")

    # -- reads ------------------------------------------------------------------------------
    async def get(self, table: str, id: str, match: Match | None = None) -> Document | None:
        found: Document | None = await self._c(table).find_one({"_id": id, **dict(match or {})})
        return found

    async def first(self, table: str, where: Where) -> Document | None:
        found: Document | None = await self._c(table).find_one(_filter(where))
        return found

    async def page(
        self, table: str, where: Where, *, order: Order, limit: int, **kw: Unpack[PageFrom]
    ) -> list[Document]:
        after, text = kw.get("after"), kw.get("text")
        if after is not None and order.then is not None:
            raise ValueError("an order with a second field takes no keyset")
        keyset = None if after is None else _keyset(order, after)
        cursor = (
            self._c(table)
            .find(_filter(where, text, keyset))
            .sort(_sort(order))
            .limit(_bounded(limit))
        )
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def count(self, table: str, where: Where) -> int:
        return int(await self._c(table).count_documents(_filter(where)))

    async def count_by(
        self, table: str, field: str, where: Where, *, limit: int
    ) -> list[tuple[Any, int]]:
        pipeline = [
            {"$match": _filter(where)},
            {"$group": {"_id": f"${check_field(field)}", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": _bounded(limit)},
        ]
        cursor = self._c(table).aggregate(pipeline)
        if inspect.isawaitable(cursor):  # PyMongo's async API awaits; motor-shaped doubles do not
            cursor = await cursor
        rows: list[Document] = await cursor.to_list(None)
        return [(row["_id"], int(row["n"])) for row in rows]

    # -- writes -----------------------------------------------------------------------------
    async def insert(self, table: str, doc: Document) -> None:
        _check_record(doc)
        with _duplicates():
            await self._c(table).insert_one(dict(doc))

    async def put(self, table: str, doc: Document, match: Match | None = None) -> None:
        _check_record(doc)
        with _duplicates():
            await self._c(table).replace_one(
                {"_id": doc["_id"], **dict(match or {})}, dict(doc), upsert=True
            )

    async def patch(
        self, table: str, id: str, *, match: Match | None = None, **change: Unpack[Change]
    ) -> Document | None:
        changes, on_insert = change.get("changes"), change.get("on_insert")
        increments, minimums = change.get("increments"), change.get("minimums")
        upsert = change.get("upsert", False)
        update: Document = {}
        taken: set[str] = set()
        for op, fields in (("$set", changes), ("$inc", increments), ("$min", minimums)):
            if fields:
                if "_id" in fields:
                    raise ValueError("_id cannot change")
                check_storable(dict(fields), op)
                update[op] = {check_field(k): v for k, v in fields.items()}
                taken.update(fields)
        filter = {"_id": id, **dict(match or {})}
        if upsert and on_insert:
            # MongoDB rejects a path in two operators; the changes win, as in SQLite.
            taken.update(match or {})
            extra = {k: v for k, v in on_insert.items() if not _conflicts(k, taken)}
            if extra:
                check_storable(extra, "$setOnInsert")
                update["$setOnInsert"] = extra
        coll = self._c(table)
        if not update:
            found: Document | None = await coll.find_one(filter)
            if found is None and upsert:
                await self.insert(table, filter)
                return dict(filter)
            return found
        with _duplicates():
            after: Document | None = await coll.find_one_and_update(
                filter, update, upsert=upsert, return_document=ReturnDocument.AFTER
            )
        return after

    async def patch_many(
        self, table: str, changes: Sequence[tuple[str, Document]], *, match: Match | None = None
    ) -> int:
        requests = []
        for record_id, fields in changes:
            check_storable(dict(fields), "$set")
            requests.append(
                UpdateOne(
                    {"_id": record_id, **dict(match or {})}, {"$set": dict(fields)}, upsert=True
                )
            )
        if not requests:
            return 0
        with _duplicates():
            result = await self._c(table).bulk_write(requests, ordered=False)
        return int(result.matched_count) + int(result.upserted_count)

    async def delete(self, table: str, id: str, match: Match | None = None) -> bool:
        result = await self._c(table).delete_one({"_id": id, **dict(match or {})})
        return int(result.deleted_count) > 0

    # -- lifecycle --------------------------------------------------------------------------
    async def ensure_schema(self) -> None:
        for spec in self._specs.values():
            coll = self._db[spec.name]
            for index in spec.indexes:
                keys = [(check_field(f), 1) for f in index.fields]
                if not index.unique and "_id" not in index.fields:
                    keys.append(("_id", 1))
                try:
                    with _duplicates():
                        await coll.create_index(keys, unique=index.unique, name=index.name)
                except OperationFailure as exc:
                    if exc.code != _INDEX_EXISTS_UNDER_ANOTHER_NAME:
                        raise
                    log.info("index %s.%s exists under another name", spec.name, index.name)

    async def close(self) -> None:
        if self._client is not None:
            closing = self._client.close()
            if inspect.isawaitable(closing):
                await closing


def _check_record(doc: Document) -> None:
    record_id = doc.get("_id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("a record needs a string _id")
    check_storable(doc)
