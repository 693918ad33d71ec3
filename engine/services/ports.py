"""Ports: what the domain needs from the outside world, as Protocols.

Adapters live in ``engine/adapters`` (direct clients), ``actors/`` (proxies over Ray) and
``serve_apps/`` (Serve handles). Tests use in-process fakes that satisfy the same Protocols.
Documents crossing these ports are plain dicts whose ``_id`` is always a string we chose, so
they travel through Ray and JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Document = dict[str, Any]
SortSpec = list[tuple[str, int]]
FloatMatrix = npt.NDArray[np.float32]


class DuplicateKey(Exception):
    """A unique index rejected a write (same meaning for MongoDB and the embedded store)."""


class DocumentCollection(Protocol):
    """The subset of a MongoDB collection the engine uses; both adapters implement exactly it."""

    async def insert_one(self, doc: Document) -> None: ...

    async def find_one(
        self, filter: Document, projection: Document | None = None
    ) -> Document | None: ...

    async def find(
        self,
        filter: Document,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        projection: Document | None = None,
    ) -> list[Document]: ...

    async def update_one(self, filter: Document, update: Document, *, upsert: bool = False) -> int:
        """Returns the number of matched documents (1 when an upsert inserted)."""
        ...

    async def find_one_and_update(
        self, filter: Document, update: Document, *, upsert: bool = False
    ) -> Document | None:
        """Returns the document after the update."""
        ...

    async def bulk_upsert(self, ops: list[tuple[Document, Document]]) -> int:
        """``update_one(filter, update, upsert=True)`` for each pair in ONE round trip (unordered).

        Imports write thousands of records: one call per record cost an actor hop (embedded)
        or a network round trip (MongoDB) each. Returns the number of matched or inserted.
        """
        ...

    async def replace_one(
        self, filter: Document, doc: Document, *, upsert: bool = False
    ) -> int: ...

    async def delete_one(self, filter: Document) -> int: ...

    async def delete_many(self, filter: Document) -> int: ...

    async def count_documents(self, filter: Document) -> int: ...

    async def create_index(
        self, keys: SortSpec, *, unique: bool = False, name: str | None = None
    ) -> None: ...


class DocumentStore(Protocol):
    def collection(self, name: str) -> DocumentCollection: ...

    async def close(self) -> None: ...


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
