"""The table gateway under the repositories: a small vocabulary of our own, two databases.

The repositories (``engine.adapters.repositories``) hold every query's logic once and speak
only this: get / page / first / count / count_by / insert / put / patch / patch_many / delete,
with plain equality, ranges (:class:`Range`), array membership (:class:`Has`) and one
case-insensitive substring search (:class:`Text`). ``engine.adapters.sqlite`` and
``engine.adapters.mongo`` translate it; the contract suite (``tests/storage``) holds them to the
same answers. Nothing here is MongoDB's operator language, so neither adapter has to emulate
the other's.

Records are JSON-shaped dicts with a string ``_id``. Sort fields hold numbers or strings and
are set by every writer; a null/missing sort value orders lowest, as in MongoDB.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack

from engine.services.ports import Document

__all__ = [
    "MAX_PAGE",
    "Has",
    "IndexSpec",
    "Match",
    "Order",
    "Range",
    "TableSpec",
    "Tables",
    "Text",
    "Where",
    "apply_changes",
    "check_field",
    "check_storable",
    "get_path",
    "matches",
]

# The most records one call returns: callers page (keyset) beyond it.
MAX_PAGE = 5000
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds on one field; ``None`` leaves that side open."""

    gt: float | str | None = None
    gte: float | str | None = None
    lt: float | str | None = None
    lte: float | str | None = None


@dataclass(frozen=True, slots=True)
class Has:
    """The field is an array holding ``value`` (or is ``value`` itself)."""

    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class Text:
    """``needle`` occurs in any of ``fields``, ignoring case (a bounded scan, not an index)."""

    fields: tuple[str, ...]
    needle: str


@dataclass(frozen=True, slots=True)
class Order:
    """Sort by ``field`` then ``_id``, both in the same direction (``_id`` alone if the field
    is ``_id``): the order keyset pages need. ``then`` sorts ties on ``field`` by a second field
    first (for a top-N list; such an order takes no keyset)."""

    field: str = "_id"
    descending: bool = False
    then: str | None = None


Scalar = str | int | float | bool | None
# Equality only: what a lookup by id may additionally require (tenant, compare-and-set).
Match = Mapping[str, Scalar]


class PageFrom(TypedDict, total=False):
    """Where a page starts: strictly after the keyset ``after`` = (sort value, ``_id``), among
    the records matching ``text``."""

    after: tuple[Any, str] | None
    text: Text | None


class Change(TypedDict, total=False):
    """What ``Tables.patch`` does to one record (every part optional)."""

    changes: Document | None
    increments: Mapping[str, int | float] | None
    minimums: Mapping[str, int | float] | None
    on_insert: Document | None
    upsert: bool


Where = Mapping[str, Scalar | Range | Has]


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """An index over these fields (``_id`` is appended to non-unique ones, for keyset ties)."""

    fields: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        prefix = "ux" if self.unique else "ix"
        return prefix + "_" + "_".join(f.replace(".", "_").lstrip("_") for f in self.fields)


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    indexes: tuple[IndexSpec, ...] = ()
    # Fields holding lists (matched with Has). SQLite cannot put an array in an expression
    # index, so its adapter leaves indexes over these fields out.
    arrays: frozenset[str] = field(default_factory=frozenset)


class Tables(Protocol):
    """A database of JSON records, one table per aggregate, declared up front (``TableSpec``)."""

    async def get(self, table: str, id: str, match: Match | None = None) -> Document | None: ...

    async def first(self, table: str, where: Where) -> Document | None:
        """Any one record matching ``where`` (lookups by a unique field)."""
        ...

    async def page(
        self, table: str, where: Where, *, order: Order, limit: int, **kw: Unpack[PageFrom]
    ) -> list[Document]:
        """Up to ``limit`` (≤ ``MAX_PAGE``) records in ``order``, strictly after the keyset
        ``after`` = (sort value, ``_id``) of the previous page's last record."""
        ...

    async def count(self, table: str, where: Where) -> int: ...

    async def count_by(
        self, table: str, field: str, where: Where, *, limit: int
    ) -> list[tuple[Any, int]]:
        """(value, count) per distinct value of ``field``, most frequent first."""
        ...

    async def insert(self, table: str, doc: Document) -> None:
        """Raises ``DuplicateKey`` if the ``_id`` or a unique index's key exists."""
        ...

    async def put(self, table: str, doc: Document, match: Match | None = None) -> None:
        """Create or replace the whole record ``doc["_id"]``; an existing record must satisfy
        ``match`` (else ``DuplicateKey``: the id belongs to someone else)."""
        ...

    async def patch(
        self, table: str, id: str, *, match: Match | None = None, **change: Unpack[Change]
    ) -> Document | None:
        """Change one record atomically and return it as it is after the change.

        ``changes`` sets fields (dotted paths reach into sub-documents), ``increments`` adds
        (from 0), ``minimums`` keeps the smaller value. With ``upsert`` a missing record is
        created from ``_id``, ``match``'s fields, ``on_insert``, then the changes; an
        existing record that fails ``match`` is a ``DuplicateKey``. Without ``upsert``, None
        when there is no record satisfying ``match`` (compare-and-set).
        """
        ...

    async def patch_many(
        self, table: str, changes: Sequence[tuple[str, Document]], *, match: Match | None = None
    ) -> int:
        """Upsert-set each ``(id, fields)`` in one round trip; the number written."""
        ...

    async def delete(self, table: str, id: str, match: Match | None = None) -> bool: ...

    async def ensure_schema(self) -> None: ...

    async def close(self) -> None: ...


def check_field(name: str) -> str:
    """Field names reach SQL text and query documents: only plain (dotted) identifiers."""
    if not _FIELD.match(name):
        raise ValueError(f"not a field name: {name!r}")
    return name


def check_storable(value: Any, where: str = "record") -> None:
    """Reject at write time what JSON (and BSON) cannot hold exactly.

    NaN/infinity, integers beyond int64, non-string keys, sets, datetimes...: failing the write
    that brings them is far better than storing something that reads back different.
    """
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: integer {value} does not fit in int64")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: non-finite number {value!r}")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be str, got {type(key).__name__}")
            check_storable(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for n, item in enumerate(value):
            check_storable(item, f"{where}[{n}]")
        return
    raise TypeError(
        f"{where}: {type(value).__name__} is not storable; use str/int/float/bool/None/list/dict"
        " (epoch floats for times)"
    )


def get_path(doc: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, None when any step is missing."""
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def matches(doc: Mapping[str, Any], match: Match | None) -> bool:
    """Equality on every field of ``match`` (None also matches a missing field)."""
    if not match:
        return True
    return all(get_path(doc, k) == v for k, v in match.items())


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    current = doc
    for part in parts[:-1]:
        nxt = current.get(part)
        if not isinstance(nxt, dict):
            nxt = current[part] = {}
        current = nxt
    current[parts[-1]] = value


def apply_changes(
    doc: dict[str, Any],
    changes: Mapping[str, Any] | None,
    increments: Mapping[str, int | float] | None,
    minimums: Mapping[str, int | float] | None,
) -> None:
    """The in-process meaning of :meth:`Tables.patch` (the SQLite adapter and the tests)."""
    for path, value in (changes or {}).items():
        if path == "_id":
            raise ValueError("_id cannot change")
        _set_path(doc, check_field(path), value)
    for path, step in (increments or {}).items():
        now = get_path(doc, check_field(path))
        _set_path(doc, path, (now if isinstance(now, int | float) else 0) + step)
    for path, value in (minimums or {}).items():
        now = get_path(doc, check_field(path))
        if not isinstance(now, int | float) or isinstance(now, bool) or value < now:
            _set_path(doc, path, value)
