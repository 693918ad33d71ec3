"""Cursor pagination: keyset on (sort field, ``_id``), so pages stay stable under inserts.

An offset would shift when new records arrive (duplicates, skips); a keyset cursor names the
last record seen and the next page starts strictly after it. ``limit`` is bounded by schemas.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from engine.http.problems import ProblemError
from engine.services.ports import Document, DocumentCollection


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise ProblemError(400, "Invalid cursor", "use next_cursor from a previous page") from exc
    if not isinstance(values, list) or len(values) != 2 or not isinstance(values[1], str):
        raise ProblemError(400, "Invalid cursor", "use next_cursor from a previous page")
    if not (values[0] is None or isinstance(values[0], str | int | float)):
        raise ProblemError(400, "Invalid cursor", "use next_cursor from a previous page")
    return values


async def page(
    coll: DocumentCollection,
    filter: Document,
    *,
    limit: int,
    cursor: str | None,
    field: str = "created_at",
    descending: bool = True,
) -> tuple[list[Document], str | None]:
    query = dict(filter)
    op = "$lt" if descending else "$gt"
    if cursor:
        value, last_id = decode_cursor(cursor)
        if field == "_id":
            query["_id"] = {op: last_id}
        else:
            after = {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}
            query = {"$and": [query, after]} if "$or" in query else {**query, **after}
    direction = -1 if descending else 1
    sort = [("_id", direction)] if field == "_id" else [(field, direction), ("_id", direction)]
    docs = await coll.find(query, sort=sort, limit=limit + 1)
    next_cursor = None
    if len(docs) > limit:
        docs = docs[:limit]
        last = docs[-1]
        next_cursor = encode_cursor([last.get(field) if field != "_id" else None, last["_id"]])
    return docs, next_cursor
