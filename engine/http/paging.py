"""Cursor pagination: keyset on (sort field, ``_id``), so pages stay stable under inserts.

An offset would shift when new records arrive (duplicates, skips); a keyset cursor names the
last record seen and the next page starts strictly after it. The repositories page by a
:data:`~engine.services.repositories.Keyset`; this module is its opaque wire form (base64url
JSON ``[value, _id]``, ``value`` null for pages sorted by ``_id``). ``limit`` is bounded by
the schemas.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from engine.http.problems import ProblemError
from engine.services.ports import Document
from engine.services.repositories import Keyset, Page


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
    if isinstance(values[0], bool) or not (
        values[0] is None or isinstance(values[0], str | int | float)
    ):
        raise ProblemError(400, "Invalid cursor", "use next_cursor from a previous page")
    return values


def keyset(cursor: str | None) -> Keyset | None:
    """Where the requested page starts (400 for a cursor we did not make)."""
    if not cursor:
        return None
    value, last_id = decode_cursor(cursor)
    return (value, str(last_id))


def next_cursor(page: Page) -> str | None:
    return None if page.after is None else encode_cursor(list(page.after))


def listing(page: Page, out: Callable[[Document], Any]) -> dict[str, Any]:
    """The API's list shape: ``{"items": [...], "next_cursor": ...}``."""
    return {"items": [out(d) for d in page.items], "next_cursor": next_cursor(page)}
