"""Ports: what the domain needs from the outside world, as Protocols.

Adapters live in ``engine/adapters`` (direct clients), ``actors/`` (proxies over Ray) and
``serve_apps/`` (Serve handles). Tests use in-process fakes that satisfy the same Protocols.
Records have their own ports, one per aggregate, in ``engine.services.repositories``.
Documents crossing these ports are plain dicts whose ``_id`` is always a string we chose, so
they travel through Ray and JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Document = dict[str, Any]
FloatMatrix = npt.NDArray[np.float32]


class DuplicateKey(Exception):
    """A unique key rejected a write (same meaning for MongoDB and SQLite)."""


@dataclass(frozen=True, slots=True)
class VectorPoint:
    """``id`` is our string id; adapters map it to the store's own id type deterministically."""

    id: str
    vector: list[float]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VectorHit:
    id: str
    score: float
    payload: dict[str, Any]


class VectorStore(Protocol):
    """Vector search, always scoped by merchant: ``merchant_id`` is a required argument."""

    async def ensure_collection(self, name: str, dim: int) -> None: ...

    async def upsert(
        self, collection: str, merchant_id: str, points: list[VectorPoint]
    ) -> None: ...

    async def search(
        self,
        collection: str,
        merchant_id: str,
        vector: list[float],
        *,
        limit: int = 10,
        must: dict[str, Any] | None = None,
    ) -> list[VectorHit]: ...

    async def delete(self, collection: str, merchant_id: str, ids: list[str]) -> None: ...

    async def count(self, collection: str, merchant_id: str) -> int: ...

    async def close(self) -> None: ...


class Embedder(Protocol):
    """Sentence embeddings, L2-normalised rows; queries and passages may be encoded differently."""

    async def embed_queries(self, texts: list[str]) -> FloatMatrix: ...

    async def embed_passages(self, texts: list[str]) -> FloatMatrix: ...
