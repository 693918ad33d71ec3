"""Document stores implementing ``engine.services.ports.DocumentStore``.

Two adapters with identical semantics:

* :class:`MongoDocumentStore` - production, over PyMongo's native async API
  (``pymongo.AsyncMongoClient``; motor is deprecated upstream).
* :class:`EmbeddedDocumentStore` - the no-servers default, in-process on ``mongomock`` with a
  JSON snapshot on disk. It is NOT durable: see its docstring.

Both keep the port's contract: ``_id`` is always a string we chose (a uuid4 hex when the caller
gave none, also on upserts, where MongoDB would otherwise invent an ``ObjectId`` that cannot
cross Ray/JSON), every returned document is a fresh ``dict`` the caller may mutate, and a unique
index violation surfaces as :class:`engine.services.ports.DuplicateKey` whichever backend raised it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import mongomock
import orjson
from mongomock import filtering as mm_filtering
from mongomock import helpers as mm_helpers
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError
from sortedcontainers import SortedList

from engine.services.ports import (
    Document,
    DocumentCollection,
    DocumentStore,
    DuplicateKey,
    SortSpec,
)

log = logging.getLogger(__name__)

__all__ = ["EmbeddedDocumentStore", "MongoDocumentStore", "new_id"]

_MISSING = object()
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def new_id() -> str:
    """A fresh string ``_id``: uuid4 hex, so ids are opaque, unique and JSON/Ray friendly."""
    return uuid.uuid4().hex


@contextlib.contextmanager
def _duplicates_as_port_error() -> Iterator[None]:
    """Translate the driver's error so callers depend on the port, not on pymongo."""
    try:
        yield
    except DuplicateKeyError as exc:
        raise DuplicateKey(str(exc)) from exc


def _filter_pins_id(filter: Mapping[str, Any]) -> bool:
    """True when an upsert on ``filter`` would take its ``_id`` from the filter (MongoDB rule)."""
    value = filter.get("_id", _MISSING)
    if value is _MISSING:
        return False
    if isinstance(value, Mapping):
        return set(value) == {"$eq"}
    return True


def _with_upsert_id(filter: Mapping[str, Any], update: Document) -> Document:
    """Add ``$setOnInsert: {_id: <uuid>}`` so an upsert never creates an ``ObjectId``.

    ``$setOnInsert`` is ignored when a document matched, so this is safe for the update path.
    """
    if _filter_pins_id(filter):
        return update
    for op in ("$set", "$setOnInsert"):
        fields = update.get(op)
        if isinstance(fields, Mapping) and "_id" in fields:
            return update
    patched = dict(update)
    on_insert = dict(patched.get("$setOnInsert") or {})
    on_insert["_id"] = new_id()
    patched["$setOnInsert"] = on_insert
    return patched


def _check_storable(value: Any, where: str = "document") -> None:
    """Reject values the embedded snapshot cannot round-trip exactly, at write time.

    Failing on the write that introduced the value is far better than failing (or silently
    changing data) at the next flush. The accepted set is what our records use; it is also
    valid BSON, so the same documents work unchanged against MongoDB.
    """
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: integer {value} does not fit in int64")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite float {value!r} cannot be snapshotted")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be str, got {type(key).__name__}")
            _check_storable(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")
        return
    if isinstance(value, dt.datetime | bytes):
        return
    raise TypeError(
        f"{where}: {type(value).__name__} is not storable; use str/int/float/bool/None/"
        "list/dict (epoch floats for times)"
    )


# --------------------------------------------------------------------------------------------
# MongoDB (production)
# --------------------------------------------------------------------------------------------


class MongoCollection:
    """``DocumentCollection`` over a ``pymongo`` ``AsyncCollection``."""

    def __init__(self, collection: Any) -> None:
        self._c = collection

    async def insert_one(self, doc: Document) -> None:
        """Inserts a copy; sets a generated ``_id`` on ``doc`` if missing (as pymongo does)."""
        if "_id" not in doc:
            doc["_id"] = new_id()
        with _duplicates_as_port_error():
            await self._c.insert_one(dict(doc))

    async def find_one(
        self, filter: Document, projection: Document | None = None
    ) -> Document | None:
        found: Document | None = await self._c.find_one(filter, projection)
        return found

    async def find(
        self,
        filter: Document,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Document | None = None,
    ) -> list[Document]:
        cursor = self._c.find(filter, projection, skip=skip, limit=limit)
        if sort:
            cursor = cursor.sort(sort)
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def update_one(self, filter: Document, update: Document, *, upsert: bool = False) -> int:
        if upsert:
            update = _with_upsert_id(filter, update)
        with _duplicates_as_port_error():
            result = await self._c.update_one(filter, update, upsert=upsert)
        return 1 if result.upserted_id is not None else int(result.matched_count)

    async def bulk_upsert(self, ops: list[tuple[Document, Document]]) -> int:
        if not ops:
            return 0
        requests = [UpdateOne(f, _with_upsert_id(f, u), upsert=True) for f, u in ops]
        with _duplicates_as_port_error():
            result = await self._c.bulk_write(requests, ordered=False)
        return int(result.matched_count) + int(result.upserted_count)

    async def find_one_and_update(
        self, filter: Document, update: Document, *, upsert: bool = False
    ) -> Document | None:
        if upsert:
            update = _with_upsert_id(filter, update)
        with _duplicates_as_port_error():
            found: Document | None = await self._c.find_one_and_update(
                filter, update, upsert=upsert, return_document=ReturnDocument.AFTER
            )
        return found

    async def replace_one(self, filter: Document, doc: Document, *, upsert: bool = False) -> int:
        replacement = dict(doc)
        with _duplicates_as_port_error():
            if upsert and "_id" not in replacement and not _filter_pins_id(filter):
                # A generated _id must only be used for the insert: on a match it would try to
                # change the existing document's immutable _id. Two steps; a racing insert in
                # between fails loudly (immutable _id / DuplicateKey) rather than corrupting.
                result = await self._c.replace_one(filter, replacement, upsert=False)
                if result.matched_count:
                    return int(result.matched_count)
                replacement["_id"] = new_id()
            result = await self._c.replace_one(filter, replacement, upsert=upsert)
        return 1 if result.upserted_id is not None else int(result.matched_count)

    async def delete_one(self, filter: Document) -> int:
        result = await self._c.delete_one(filter)
        return int(result.deleted_count)

    async def delete_many(self, filter: Document) -> int:
        result = await self._c.delete_many(filter)
        return int(result.deleted_count)

    async def count_documents(self, filter: Document) -> int:
        return int(await self._c.count_documents(filter))

    async def create_index(
        self, keys: SortSpec, *, unique: bool = False, name: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"unique": unique}
        if name is not None:
            kwargs["name"] = name
        with _duplicates_as_port_error():
            await self._c.create_index(keys, **kwargs)


class MongoDocumentStore:
    """``DocumentStore`` against a real MongoDB (production).

    Construction performs no I/O: the async client connects on first use, so building the
    object at the composition root never blocks or fails on a slow server; call
    :meth:`ping` to check reachability explicitly (readiness probe, startup).
    """

    def __init__(self, url: str, db: str) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, connect=False, tz_aware=False
        )
        self._db = self._client[db]
        self._collections: dict[str, MongoCollection] = {}

    def collection(self, name: str) -> DocumentCollection:
        coll = self._collections.get(name)
        if coll is None:
            coll = self._collections[name] = MongoCollection(self._db[name])
        return coll

    async def ping(self) -> None:
        """Raises if the server is unreachable."""
        await self._client.admin.command("ping")

    async def close(self) -> None:
        await self._client.close()


# --------------------------------------------------------------------------------------------
# Embedded (mongomock + snapshot)
# --------------------------------------------------------------------------------------------

_Scalar = str | int | float | bool | None
_FALLBACK = object()  # sentinel key: document not hashable under an index (arrays, subdocs)


def _index_value(doc: Mapping[str, Any], path: str) -> Any:
    """Value of ``path`` for hashing, or ``_FALLBACK`` where MongoDB equality is not plain.

    Equality on a field holding an array matches any element, and a dotted path through an
    array fans out; such documents cannot be found by one hash key, so they go to a fallback
    set that every lookup on that index also scans.
    """
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, list):
            return _FALLBACK
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
        if current is None:
            return None
    if isinstance(current, list | dict):
        return _FALLBACK
    try:
        hash(current)
    except TypeError:
        return _FALLBACK
    return current


class _HashIndex:
    """Equality index over one MongoDB index's fields, with a map per key prefix."""

    __slots__ = ("doc_keys", "fallback", "fields", "maps")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.maps: list[dict[tuple[Any, ...], set[Any]]] = [{} for _ in fields]
        self.fallback: set[Any] = set()
        self.doc_keys: dict[Any, tuple[Any, ...] | None] = {}

    def add(self, doc_id: Any, doc: Mapping[str, Any]) -> None:
        self.remove(doc_id)
        values = tuple(_index_value(doc, f) for f in self.fields)
        if any(v is _FALLBACK for v in values):
            self.fallback.add(doc_id)
            self.doc_keys[doc_id] = None
            return
        for n, mapping in enumerate(self.maps, start=1):
            mapping.setdefault(values[:n], set()).add(doc_id)
        self.doc_keys[doc_id] = values

    def remove(self, doc_id: Any) -> None:
        if doc_id not in self.doc_keys:
            return
        values = self.doc_keys.pop(doc_id)
        if values is None:
            self.fallback.discard(doc_id)
            return
        for n, mapping in enumerate(self.maps, start=1):
            bucket = mapping.get(values[:n])
            if bucket is not None:
                bucket.discard(doc_id)
                if not bucket:
                    del mapping[values[:n]]

    def prefix_size(self, equalities: Mapping[str, Any]) -> tuple[int, int]:
        """(length of our field prefix fixed by ``equalities``, candidates it leaves)."""
        prefix: list[Any] = []
        for field in self.fields:
            if field not in equalities:
                break
            prefix.append(equalities[field])
        if not prefix:
            return 0, 0
        return len(prefix), len(self.maps[len(prefix) - 1].get(tuple(prefix), ())) + len(
            self.fallback
        )

    def lookup(self, equalities: Mapping[str, Any]) -> set[Any] | None:
        """Superset of ids matching the longest prefix of our fields fixed by ``equalities``."""
        prefix: list[Any] = []
        for field in self.fields:
            if field not in equalities:
                break
            prefix.append(equalities[field])
        if not prefix:
            return None
        found = self.maps[len(prefix) - 1].get(tuple(prefix), set())
        return found | self.fallback if self.fallback else set(found)


# Sort keys: (rank, value...) tuples giving mongomock's (and BSON's) cross-type order for the
# scalar types we store - [] < null/missing < numbers < strings < bytes < bool < datetime - so
# one Python tuple comparison orders any two index entries and never raises across types.
_Key = tuple[Any, ...]
_EMPTY_ARRAY_KEY: _Key = (0,)
_NULL_KEY: _Key = (5,)
_KEY_MAX: _Key = (99,)  # sorts after every key: "all entries with this prefix"
_MAX_ENTRIES_PER_DOC = 64  # multikey fan-out cap; beyond it the doc makes the index unordered


def _sort_key(value: Any) -> _Key | None:
    """Order key of a scalar, or None when we do not order it (subdocuments, aware datetimes)."""
    if value is None:
        return _NULL_KEY
    if isinstance(value, bool):
        return (40, value)
    if isinstance(value, int | float):
        return (10, value)
    if isinstance(value, str):
        return (15, value)
    if isinstance(value, bytes):
        return (30, len(value), value)
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return (45, value)
    return None


def _equality_key(value: Any) -> _Key | None:
    """Key for an equality condition, or None when the index cannot narrow it exactly.

    mongomock compares equality with Python ``==``, so ``{f: 1}`` also matches ``True``;
    booleans and numbers equal to 0/1 are left to the residual filter so the index never
    answers with fewer documents than the unindexed path would.
    """
    if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
        return None
    return _sort_key(value)


def _field_keys(doc: Mapping[str, Any], path: str) -> tuple[list[_Key] | None, bool]:
    """(keys of ``path`` in ``doc``, multikey?); keys None when the value cannot be ordered.

    An array fans out to one key per distinct element (a MongoDB multikey index); a dotted
    path through an array, subdocuments and nested arrays are not ordered.
    """
    current: Any = doc
    for part in path.split("."):
        if isinstance(current, list):
            return None, False
        if not isinstance(current, Mapping):
            return [_NULL_KEY], False
        current = current.get(part)
    if isinstance(current, list):
        if not current:
            return [_EMPTY_ARRAY_KEY], True
        keys: dict[_Key, None] = {}
        for item in current:
            key = _sort_key(item)
            if key is None:
                return None, True
            keys[key] = None
        return list(keys), True
    key = _sort_key(current)
    return (None if key is None else [key]), False


class _OrderedIndex:
    """Sorted entries ``(key(f1), ..., key(fn), key(_id))`` over one declared index.

    Entries are kept ascending whatever directions the index declared; a sort is served when
    it matches the fields after the equality prefix, all ascending or all descending (walked
    in reverse). ``_id`` ends every entry, so ties are broken by ``_id`` as the API's keyset
    cursors require. A field holding an array in any document is multikey (one entry per
    element): usable for equality only. Documents we cannot order (see ``_field_keys``) go to
    ``unordered``; while that set is non-empty the planner does not use this index.
    """

    __slots__ = ("docs", "entries", "fields", "multikey", "unordered")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = (
            (*fields[: fields.index("_id")], "_id") if "_id" in fields else (*fields, "_id")
        )
        self.entries: Any = SortedList()
        self.docs: dict[Any, tuple[list[_Key], tuple[str, ...]]] = {}
        self.unordered: set[Any] = set()
        self.multikey: dict[str, int] = {}

    def add(self, doc_id: Any, doc: Mapping[str, Any]) -> None:
        self.remove(doc_id)
        if doc_id is None or isinstance(doc_id, list | dict):
            self.unordered.add(doc_id)
            return
        combos: list[_Key] = [()]
        multi: list[str] = []
        for field in self.fields:
            keys, is_multi = _field_keys(doc, field)
            if keys is None or len(combos) * len(keys) > _MAX_ENTRIES_PER_DOC:
                self.unordered.add(doc_id)
                return
            if is_multi:
                multi.append(field)
            combos = [(*c, k) for c in combos for k in keys]
        for field in multi:
            self.multikey[field] = self.multikey.get(field, 0) + 1
        self.entries.update(combos)
        self.docs[doc_id] = (combos, tuple(multi))

    def remove(self, doc_id: Any) -> None:
        self.unordered.discard(doc_id)
        found = self.docs.pop(doc_id, None)
        if found is None:
            return
        combos, multi = found
        for entry in combos:
            self.entries.remove(entry)
        for field in multi:
            left = self.multikey[field] - 1
            if left:
                self.multikey[field] = left
            else:
                del self.multikey[field]

    def count(self, low: _Key, high: _Key, high_exclusive: bool) -> int:
        entries = self.entries
        end = entries.bisect_left(high) if high_exclusive else entries.bisect_right(high)
        return max(0, int(end) - int(entries.bisect_left(low)))

    def walk(self, low: _Key, high: _Key, high_exclusive: bool, reverse: bool) -> Iterator[Any]:
        """Document ids in index order between the bounds (repeats possible when multikey)."""
        for entry in self.entries.irange(low, high, (True, not high_exclusive), reverse=reverse):
            yield entry[-1][-1]


class _Conditions:
    """What a filter pins down, as far as an index can use it; the rest stays residual.

    Only conjuncts are collected (top level and ``$and`` members), so every condition here is
    implied by the filter and a range built from them is a superset of the matches.
    """

    __slots__ = ("equal", "keysets", "ranges")

    def __init__(self, filter: Mapping[str, Any]) -> None:
        self.equal: dict[str, _Key] = {}
        self.ranges: dict[str, list[tuple[str, _Key]]] = {}
        self.keysets: list[list[Any]] = []
        self._collect(filter)

    def _collect(self, filter: Mapping[str, Any]) -> None:
        for field, cond in filter.items():
            if field == "$and" and isinstance(cond, list):
                for part in cond:
                    if isinstance(part, Mapping):
                        self._collect(part)
            elif field == "$or" and isinstance(cond, list):
                self.keysets.append(cond)
            elif field.startswith("$"):
                continue
            elif isinstance(cond, Mapping):
                if not cond or not all(isinstance(op, str) and op.startswith("$") for op in cond):
                    continue  # subdocument equality: residual
                for op, value in cond.items():
                    if op == "$eq":
                        key = _equality_key(value)
                        if key is not None:
                            self.equal[field] = key
                    elif op in ("$gt", "$gte", "$lt", "$lte"):
                        key = _sort_key(value)
                        if key is not None:
                            self.ranges.setdefault(field, []).append((op, key))
            else:
                key = _equality_key(cond)
                if key is not None:
                    self.equal[field] = key

    def keyset(self, first: str, second: str) -> tuple[str, _Key, _Key] | None:
        """A recognised keyset cursor ``(first, second) op (v, w)`` as ``(op, key(v), key(w))``.

        The shape is the API's ``{$or: [{first: {op: v}}, {first: v, second: {op: w}}]}``.
        """
        for branches in self.keysets:
            if len(branches) != 2 or not all(isinstance(b, Mapping) for b in branches):
                continue
            head, tail = branches
            if set(head) != {first} or set(tail) != {first, second}:
                continue
            cond, tail_cond = head[first], tail[second]
            if not (isinstance(cond, Mapping) and isinstance(tail_cond, Mapping)):
                continue
            if len(cond) != 1 or set(cond) != set(tail_cond) or set(cond) - {"$gt", "$lt"}:
                continue
            op = next(iter(cond))
            v, w = _sort_key(cond[op]), _sort_key(tail_cond[op])
            equal = tail[first]
            # The equality branch must be exact for the tuple bound to be a superset.
            if v is None or w is None or isinstance(equal, Mapping) or _equality_key(equal) != v:
                continue
            return op, v, w
        return None


class _Plan:
    """An index walk answering a sorted query: ids in the requested order, a superset."""

    __slots__ = ("dedupe", "high", "high_exclusive", "index", "low", "reverse")

    def __init__(
        self,
        index: _OrderedIndex,
        low: _Key,
        high: _Key,
        high_exclusive: bool,
        reverse: bool,
        dedupe: bool,
    ) -> None:
        self.index = index
        self.low = low
        self.high = high
        self.high_exclusive = high_exclusive
        self.reverse = reverse
        self.dedupe = dedupe

    def size(self) -> int:
        return self.index.count(self.low, self.high, self.high_exclusive)

    def ids(self) -> Iterator[Any]:
        walk = self.index.walk(self.low, self.high, self.high_exclusive, self.reverse)
        if not self.dedupe:
            yield from walk
            return
        seen: set[Any] = set()
        for doc_id in walk:
            if doc_id not in seen:
                seen.add(doc_id)
                yield doc_id


def _plan_on(
    index: _OrderedIndex, cond: _Conditions, sort: list[tuple[str, int]] | None
) -> tuple[int, _Plan] | None:
    """(equality prefix length, plan) when ``index`` serves ``cond`` in ``sort`` order."""
    if index.unordered:
        return None
    fields = index.fields
    k = 0
    while k < len(fields) and fields[k] in cond.equal:
        k += 1
    rest = fields[k:]
    if any(f in index.multikey for f in rest):
        return None
    reverse = False
    if sort is not None:
        if any(f in index.multikey for f, _ in sort):
            return None
        order = [(f, d) for f, d in sort if f not in cond.equal]
        if not order or len(order) > len(rest):
            return None
        if any(f != rest[i] for i, (f, _) in enumerate(order)):
            return None
        if len({d < 0 for _, d in order}) != 1:
            return None
        reverse = order[0][1] < 0
    prefix = tuple(cond.equal[f] for f in fields[:k])
    lows: list[_Key] = [prefix]
    highs: list[tuple[_Key, bool]] = [((*prefix, _KEY_MAX), False)]
    if rest:
        for op, key in cond.ranges.get(rest[0], ()):
            if op == "$gt":
                lows.append((*prefix, key, _KEY_MAX))
            elif op == "$gte":
                lows.append((*prefix, key))
            elif op == "$lt":
                highs.append(((*prefix, key), True))
            else:
                highs.append(((*prefix, key, _KEY_MAX), False))
    if len(rest) >= 2:
        keyset = cond.keyset(rest[0], rest[1])
        if keyset is not None:
            op, v, w = keyset
            if op == "$gt":
                lows.append((*prefix, v, w, _KEY_MAX))
            else:
                highs.append(((*prefix, v, w), True))
    high, high_exclusive = min(highs, key=lambda h: (h[0], not h[1]))
    dedupe = any(f in index.multikey for f in fields[:k])
    return k, _Plan(index, max(lows), high, high_exclusive, reverse, dedupe)


_SMALL_BUCKET = 2_000  # a hash bucket this small is scanned and sorted rather than walked


def _scalar_equalities(filter: Mapping[str, Any]) -> dict[str, _Scalar]:
    """Top-level ``field: scalar`` / ``field: {$eq: scalar}`` conditions (hash-index keys)."""
    equalities: dict[str, _Scalar] = {}
    for key, value in filter.items():
        if key.startswith("$"):
            continue
        if isinstance(value, Mapping):
            if set(value) != {"$eq"}:
                continue
            value = value["$eq"]
        if value is None or isinstance(value, str | int | float | bool):
            equalities[key] = value
    return equalities


# mongomock's stubs present its classes as pymongo's; we subclass its runtime class, typed Any.
_MongomockCollection: Any = mongomock.Collection
_filter_applies: Callable[[Any, Any], bool] = mm_filtering.filter_applies
_patch_datetimes: Callable[[Any], Any] = mm_helpers.patch_datetime_awareness_in_document
_get_by_dot: Callable[[Any, str], Any] = mm_helpers.get_value_by_dot


class _IndexedCollection(_MongomockCollection):  # type: ignore[misc]
    """mongomock collection with hash indexes and ordered (sorted) indexes.

    Plain mongomock scans every document for every query and for every unique-index check:
    measured here, 20k inserts under a unique index took 318 s and a lookup by ``_id`` took
    30-60 ms at 20k documents, which is unusable for a realtime engine. This subclass keeps
    mongomock's matching/update semantics (it still runs ``filter_applies`` on every candidate)
    but narrows candidates with an ``_id`` lookup or with hash maps over each declared index,
    so indexed equality queries and unique checks are O(1)-ish.

    Every declared index is also kept as an :class:`_OrderedIndex`, so a sorted, limited page
    (the admin API's keyset pagination) walks the index from the cursor and stops after
    ``limit`` matches instead of matching, sorting and cutting all of a merchant's documents
    (measured 4-6 s per page at 100k products before). The walk only narrows and orders
    candidates: the full filter still runs on each, so results equal the unindexed path's.

    Relies on three mongomock internals (``_iter_documents``, ``_ensure_uniques``, ``_delete``,
    stable in mongomock 4.x); tests pin the behaviour.
    """

    def __init__(self, database: Any, name: str) -> None:
        super().__init__(
            database,
            name=name,
            _db_store=database._store,
            read_preference=database.read_preference,
            codec_options=database.codec_options,
        )
        self._hash_indexes: dict[str, _HashIndex] = {}
        self._ordered: dict[str, _OrderedIndex] = {}
        self._touched: list[dict[str, Any]] | None = None
        self._seq: dict[Any, int] = {}
        self._next_seq = 0

    # -- index maintenance -------------------------------------------------------------------
    def _reindex(self, doc: Mapping[str, Any]) -> None:
        doc_id = doc["_id"]
        if doc_id not in self._seq:
            self._seq[doc_id] = self._next_seq
            self._next_seq += 1
        for index in self._hash_indexes.values():
            index.add(doc_id, doc)
        for ordered in self._ordered.values():
            ordered.add(doc_id, doc)

    def _unindex(self, doc_id: Any) -> None:
        self._seq.pop(doc_id, None)
        for index in self._hash_indexes.values():
            index.remove(doc_id)
        for ordered in self._ordered.values():
            ordered.remove(doc_id)

    def create_index(
        self, key_or_list: Any, cache_for: int = 300, session: Any = None, **kw: Any
    ) -> str:
        name: str = super().create_index(key_or_list, cache_for, session, **kw)
        fields = tuple(k for k, _ in self._store.indexes[name]["key"])
        if name not in self._hash_indexes:
            index = _HashIndex(fields)
            for doc in self._store._documents.values():
                index.add(doc["_id"], doc)
            self._hash_indexes[name] = index
            ordered = _OrderedIndex(fields)
            for doc in self._store._documents.values():
                ordered.add(doc["_id"], doc)
            self._ordered[name] = ordered
        return name

    # -- ordered index plans -------------------------------------------------------------------
    def plan(self, filter: Any, sort: list[tuple[str, int]]) -> _Plan | None:
        """An index walk yielding a superset of ``filter``'s matches in ``sort`` order, or None.

        Used when equalities fix a prefix of an index and the sort (either direction) follows
        the next fields; a range on the first of them, or the API's keyset ``$or``, bounds the
        walk. Among usable indexes the longest equality prefix, then the narrowest range, wins;
        a hash index fixing more fields with a small bucket beats them (scan + sort is cheap).
        """
        if not self._ordered or not isinstance(filter, Mapping):
            return None
        pinned = filter.get("_id", _MISSING)
        if pinned is not _MISSING and not (
            isinstance(pinned, Mapping) and set(pinned) <= {"$gt", "$gte", "$lt", "$lte"}
        ):
            return None  # _id equality/$in: the hash path reads a handful of documents
        cond = _Conditions(filter)
        best: tuple[int, int, _Plan] | None = None
        for index in self._ordered.values():
            found = _plan_on(index, cond, sort)
            if found is None:
                continue
            k, plan = found
            if best is None or k > best[0] or (k == best[0] and plan.size() < best[1]):
                best = (k, plan.size(), plan)
        if best is None:
            return None
        equalities = _scalar_equalities(filter)
        for hashed in self._hash_indexes.values():
            k, size = hashed.prefix_size(equalities)
            if k > best[0] and size <= min(best[1], _SMALL_BUCKET):
                return None
        return best[2]

    def run_plan(
        self, plan: _Plan, filter: Any, skip: int, limit: int, projection: Any
    ) -> list[dict[str, Any]]:
        """Walk ``plan``, keep documents the full filter matches, stop after skip + limit."""
        spec = _patch_datetimes(filter)
        docs = self._store._documents
        out: list[dict[str, Any]] = []
        for doc_id in plan.ids():
            doc = docs.get(doc_id)
            if doc is None or not _filter_applies(spec, doc):
                continue
            if skip:
                skip -= 1
                continue
            fields = None if projection is None else dict(projection)
            out.append(self._copy_only_fields(doc, fields, dict))
            if limit and len(out) >= limit:
                break
        return out

    def count_exact(self, filter: Any) -> int | None:
        """Count from an ordered index when ``filter`` is equalities on exactly its prefix."""
        if not self._ordered or not isinstance(filter, Mapping) or not filter:
            return None
        equal: dict[str, _Key] = {}
        for field, value in filter.items():
            if field.startswith("$"):
                return None
            if isinstance(value, Mapping):
                if set(value) != {"$eq"}:
                    return None
                value = value["$eq"]
            key = _equality_key(value)
            if key is None:
                return None
            equal[field] = key
        n = len(equal)
        for index in self._ordered.values():
            if index.unordered or set(index.fields[:n]) != set(equal):
                continue
            if any(f in index.multikey for f in index.fields[n:]):
                continue
            prefix = tuple(equal[f] for f in index.fields[:n])
            return index.count(prefix, (*prefix, _KEY_MAX), False)
        return None

    # -- mongomock hooks -----------------------------------------------------------------------
    def _candidates(self, filter: Any) -> list[Any] | None:
        if not isinstance(filter, Mapping):
            return None
        equalities = _scalar_equalities(filter)
        id_in: list[Any] | None = None
        ids = filter.get("_id")
        if (
            isinstance(ids, Mapping)
            and set(ids) == {"$in"}
            and isinstance(ids["$in"], list)
            and all(isinstance(v, str | int) for v in ids["$in"])
        ):
            id_in = list(ids["$in"])
        if "_id" in equalities and isinstance(equalities["_id"], str | int):
            id_in = [equalities["_id"]]
        if id_in is not None:
            found: set[Any] = set(id_in)
        else:
            # Size every candidate bucket first and copy only the smallest: with several
            # indexes sharing a ``merchant_id`` prefix, copying each merchant-wide bucket cost
            # milliseconds per lookup at 100k documents.
            chosen: _HashIndex | None = None
            smallest = 0
            for index in self._hash_indexes.values():
                k, size = index.prefix_size(equalities)
                if k and (chosen is None or size < smallest):
                    chosen, smallest = index, size
            ids = None if chosen is None else chosen.lookup(equalities)
            if ids is None:
                return None
            found = ids
        seq = self._seq
        return sorted((i for i in found if i in seq), key=seq.__getitem__)

    def _iter_documents(self, filter: Any) -> Iterator[dict[str, Any]]:
        candidates = self._candidates(filter)
        it: Iterator[dict[str, Any]]
        if candidates is None:
            it = super()._iter_documents(filter)
        else:
            docs = self._store._documents
            selected = []
            for doc_id in candidates:
                doc = docs.get(doc_id)
                if doc is not None and _filter_applies(filter, doc):
                    selected.append(doc)
            it = iter(selected)
        return it if self._touched is None else self._recording(it, self._touched)

    @staticmethod
    def _recording(
        it: Iterator[dict[str, Any]], touched: list[dict[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        for doc in it:
            touched.append(doc)
            yield doc

    def _update(self, spec: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        # mongomock re-checks (and so re-indexes) an updated document only when it compares
        # unequal to its old self, and Python says 1 == 1.0 == True: ``$set`` of True over 1
        # would leave a stale ordered key. Re-index every document the update visited.
        touched: list[dict[str, Any]] = []
        self._touched = touched
        try:
            return super()._update(spec, document, *args, **kwargs)
        finally:
            self._touched = None
            docs = self._store._documents
            for doc in touched:
                current = docs.get(doc["_id"])
                if current is not None:
                    self._reindex(current)

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        # Called by mongomock after every insert and every in-place update (new_data is already
        # stored); on success we refresh our maps, on failure mongomock rolls back.
        doc_id = new_data["_id"]
        for name, spec in self._store.indexes.items():
            if not spec.get("unique"):
                continue
            index = self._hash_indexes.get(name)
            query = {k: _index_value(new_data, k) for k, _ in spec["key"]}
            if index is None or any(v is _FALLBACK for v in query.values()):
                # Array/subdocument key: scan everything, as mongomock would (rare).
                exact: dict[str, Any] = {}
                for k, _ in spec["key"]:
                    try:
                        exact[k] = _get_by_dot(new_data, k)
                    except KeyError:
                        exact[k] = None
                others: Any = (d for d in self._store._documents.values() if d["_id"] != doc_id)
            else:
                exact = query
                docs = self._store._documents
                others = (
                    docs[i] for i in index.lookup(query) or set() if i != doc_id and i in docs
                )
            if any(_filter_applies(exact, other) for other in others):
                raise DuplicateKeyError(f"E11000 duplicate key error index: {name}", 11000)
        self._reindex(new_data)

    def _delete(
        self,
        filter: Any,
        collation: Any = None,
        hint: Any = None,
        multi: bool = False,
        session: Any = None,
    ) -> dict[str, Any]:
        filter = _patch_datetimes(filter or {})
        deleted = 0
        for doc in list(self._iter_documents(filter)):
            doc_id = doc["_id"]
            del self._store[doc_id]
            self._unindex(doc_id)
            deleted += 1
            if not multi:
                break
        return {"connectionId": self.database.client._id, "n": deleted, "ok": 1.0, "err": None}


class EmbeddedCollection:
    """``DocumentCollection`` over an in-process mongomock collection.

    Calls are synchronous in-memory operations, run inline: an ``await`` here never yields,
    which is what makes each method atomic with respect to other coroutines.
    """

    def __init__(self, store: EmbeddedDocumentStore, name: str, coll: _IndexedCollection) -> None:
        self._store = store
        self._name = name
        self._c = coll

    def _dirty(self) -> None:
        self._store._mark_dirty(self._name)

    async def insert_one(self, doc: Document) -> None:
        """Inserts a copy; sets a generated ``_id`` on ``doc`` if missing (as pymongo does)."""
        _check_storable(doc)
        if "_id" not in doc:
            doc["_id"] = new_id()
        with _duplicates_as_port_error():
            self._c.insert_one(dict(doc))
        self._dirty()

    async def find_one(
        self, filter: Document, projection: Document | None = None
    ) -> Document | None:
        found: Document | None = self._c.find_one(filter, projection)
        return found

    async def find(
        self,
        filter: Document,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Document | None = None,
    ) -> list[Document]:
        if sort:
            plan = self._c.plan(filter, list(sort))
            if plan is not None:
                return self._c.run_plan(plan, filter, skip, limit, projection)
        cursor = self._c.find(filter, projection)
        if sort:
            cursor = cursor.sort(sort)
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    async def update_one(self, filter: Document, update: Document, *, upsert: bool = False) -> int:
        _check_storable(update, "update")
        if upsert:
            update = _with_upsert_id(filter, update)
        with _duplicates_as_port_error():
            result = self._c.update_one(filter, update, upsert=upsert)
        changed = 1 if result.upserted_id is not None else int(result.matched_count)
        if changed:
            self._dirty()
        return changed

    async def bulk_upsert(self, ops: list[tuple[Document, Document]]) -> int:
        # In-process already: the round trip saved is the actor hop, in actors/stores.py.
        changed = 0
        for f, u in ops:
            changed += await self.update_one(f, u, upsert=True)
        return changed

    async def find_one_and_update(
        self, filter: Document, update: Document, *, upsert: bool = False
    ) -> Document | None:
        _check_storable(update, "update")
        if upsert:
            update = _with_upsert_id(filter, update)
        with _duplicates_as_port_error():
            found: Document | None = self._c.find_one_and_update(
                filter, update, upsert=upsert, return_document=ReturnDocument.AFTER
            )
        if found is not None:
            self._dirty()
        return found

    async def replace_one(self, filter: Document, doc: Document, *, upsert: bool = False) -> int:
        _check_storable(doc)
        replacement = dict(doc)
        with _duplicates_as_port_error():
            if upsert and "_id" not in replacement and not _filter_pins_id(filter):
                result = self._c.replace_one(filter, replacement, upsert=False)
                if result.matched_count:
                    self._dirty()
                    return int(result.matched_count)
                replacement["_id"] = new_id()
            result = self._c.replace_one(filter, replacement, upsert=upsert)
        changed = 1 if result.upserted_id is not None else int(result.matched_count)
        if changed:
            self._dirty()
        return changed

    async def delete_one(self, filter: Document) -> int:
        deleted = int(self._c.delete_one(filter).deleted_count)
        if deleted:
            self._dirty()
        return deleted

    async def delete_many(self, filter: Document) -> int:
        deleted = int(self._c.delete_many(filter).deleted_count)
        if deleted:
            self._dirty()
        return deleted

    async def count_documents(self, filter: Document) -> int:
        exact = self._c.count_exact(filter)
        if exact is not None:
            return exact
        return int(self._c.count_documents(filter))

    async def create_index(
        self, keys: SortSpec, *, unique: bool = False, name: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {"unique": unique}
        if name is not None:
            kwargs["name"] = name
        with _duplicates_as_port_error():
            self._c.create_index(list(keys), **kwargs)
        self._dirty()

    # -- snapshot ----------------------------------------------------------------------------
    def _snapshot(self) -> bytes:
        """Serialise on the loop thread: orjson holds the GIL, so the snapshot is consistent."""
        indexes = [
            {
                "name": name,
                "key": [[k, d] for k, d in spec["key"]],
                "unique": bool(spec.get("unique")),
            }
            for name, spec in self._c._store.indexes.items()
            if name != "_id_"
        ]
        body = {
            "v": 1,
            "name": self._name,
            "indexes": indexes,
            "docs": list(self._c._store._documents.values()),
        }
        return orjson.dumps(body, default=_encode_extra, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def _restore(self, body: Mapping[str, Any]) -> None:
        docs = body.get("docs", [])
        if self._c._store.indexes or self._c._store._documents:
            raise RuntimeError(f"collection {self._name!r} already populated; restore first")
        for doc in docs:
            self._c._store[doc["_id"]] = doc
            self._c._reindex(doc)
        for spec in body.get("indexes", []):
            self._c.create_index(
                [(k, d) for k, d in spec["key"]], unique=spec["unique"], name=spec["name"]
            )


def _encode_extra(value: Any) -> Any:
    """orjson ``default``: tag the two non-JSON types we accept so load restores them exactly."""
    if isinstance(value, dt.datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot snapshot {type(value).__name__}")


def _decode_extra(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if "$date" in value and isinstance(value["$date"], str):
                return dt.datetime.fromisoformat(value["$date"])
            if "$bytes" in value and isinstance(value["$bytes"], str):
                return base64.b64decode(value["$bytes"])
        return {k: _decode_extra(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_extra(v) for v in value]
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    """tmp + fsync + rename + fsync(dir): a crash leaves either the old or the new snapshot."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


_SUFFIX = ".coll.json"


class EmbeddedDocumentStore:
    """In-process ``DocumentStore`` (mongomock) that keeps its data across a CLEAN restart.

    Why: the program must run with no servers installed, and MongoDB cannot run on this
    machine. mongomock gives MongoDB's query/update semantics in memory; we add hash indexes
    (see :class:`_IndexedCollection`) and a snapshot on disk.

    Durability, honestly: NOT durable. Data lives in memory; :meth:`flush` (also run by
    :meth:`close` and by the optional autoflush task) writes each changed collection to
    ``path/<name>.coll.json`` atomically (tmp + fsync + rename), including index definitions
    so unique indexes come back on :meth:`load`. Writes made after the last flush are LOST on a
    crash or kill. Production uses MongoDB. With ``path=None`` nothing is persisted (tests).

    Values must be JSON-representable plus ``datetime``/``bytes`` (we store times as epoch
    floats anyway); anything else, non-finite floats and ints beyond int64 are rejected at write
    time so the snapshot always restores exactly what was stored. One process only: two
    processes on the same ``path`` would overwrite each other's snapshots.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._db: Any = mongomock.MongoClient()["kaleem"]
        self._collections: dict[str, EmbeddedCollection] = {}
        self._dirty: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._autoflush: asyncio.Task[None] | None = None
        self._closed = False
        if path is not None:
            self.load()

    def collection(self, name: str) -> DocumentCollection:
        return self._get(name)

    def _get(self, name: str) -> EmbeddedCollection:
        coll = self._collections.get(name)
        if coll is None:
            if self._closed:
                raise RuntimeError("EmbeddedDocumentStore is closed")
            coll = EmbeddedCollection(self, name, _IndexedCollection(self._db, name))
            self._collections[name] = coll
        return coll

    def _mark_dirty(self, name: str) -> None:
        self._dirty.add(name)

    def load(self) -> None:
        """Load every collection snapshot from ``path`` (sync; called once at construction)."""
        if self._path is None:
            return
        self._path.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        total = 0
        for file in sorted(self._path.glob(f"*{_SUFFIX}")):
            name = unquote(file.name[: -len(_SUFFIX)])
            raw = file.read_bytes()
            body = orjson.loads(raw)
            if b'"$date"' in raw or b'"$bytes"' in raw:
                body["docs"] = _decode_extra(body["docs"])
            self._get(name)._restore(body)
            total += len(body.get("docs", []))
        log.info(
            "embedded document store loaded %d docs from %s in %.3fs",
            total,
            self._path,
            time.perf_counter() - started,
        )

    async def flush(self) -> None:
        """Write every collection changed since the last flush; no-op without ``path``."""
        if self._path is None:
            self._dirty.clear()
            return
        async with self._flush_lock:
            names, self._dirty = sorted(self._dirty), set()
            for i, name in enumerate(names):
                try:
                    data = self._collections[name]._snapshot()
                    target = self._path / f"{quote(name, safe='')}{_SUFFIX}"
                    await asyncio.to_thread(_write_atomic, target, data)
                except BaseException:
                    self._dirty.update(names[i:])  # retry next time; old snapshot still intact
                    raise

    def start_autoflush(self, interval_s: float) -> asyncio.Task[None]:
        """Flush every ``interval_s`` seconds until :meth:`close`; bounds loss on a crash."""
        if self._autoflush is not None and not self._autoflush.done():
            return self._autoflush

        async def _loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.flush()
                except Exception:
                    log.exception("embedded document store autoflush failed; will retry")

        self._autoflush = asyncio.create_task(_loop(), name="embedded-docstore-autoflush")
        return self._autoflush

    async def close(self) -> None:
        """Stop autoflush and write a final snapshot."""
        if self._autoflush is not None:
            self._autoflush.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autoflush
            self._autoflush = None
        await self.flush()
        self._closed = True


if TYPE_CHECKING:  # mypy proves both adapters satisfy the ports; no runtime cost

    def _conforms(
        mongo: MongoDocumentStore,
        embedded: EmbeddedDocumentStore,
        c1: MongoCollection,
        c2: EmbeddedCollection,
    ) -> tuple[DocumentStore, DocumentStore, DocumentCollection, DocumentCollection]:
        return mongo, embedded, c1, c2
