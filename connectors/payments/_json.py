"""Reading provider JSON defensively: a field of the wrong type reads as absent."""

from __future__ import annotations

import json
from typing import Any

MAX_BODY_BYTES = 64 * 1024


def load_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in ``body``, or None (not JSON, not an object, too big)."""
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def text(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def obj(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def integer(parent: Any, key: str) -> int:
    value = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value
