"""Ports: what the domain needs from the outside world, as Protocols.

Adapters live in ``engine/adapters`` (direct clients), ``actors/`` (proxies over Ray) and
``serve_apps/`` (Serve handles). Tests use in-process fakes that satisfy the same Protocols.
Records have their own ports, one per aggregate, in ``engine.services.repositories``.
Documents crossing these ports are plain dicts whose ``_id`` is always a string we chose, so
they travel through Ray and JSON unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from connectors.stores.base import StoreRequest, StoreResponse
from engine.domain.messages import OutboundReply

Document = dict[str, Any]
FloatMatrix = npt.NDArray[np.float32]


class SearchOptions(TypedDict, total=False):
    """``limit`` hits (10 by default) matching every exact condition of ``must``."""

    limit: int
    must: dict[str, Any] | None


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
        self, collection: str, merchant_id: str, vector: list[float], **kw: Unpack[SearchOptions]
    ) -> list[VectorHit]: ...

    async def delete(self, collection: str, merchant_id: str, ids: list[str]) -> None: ...

    async def count(self, collection: str, merchant_id: str) -> int: ...

    async def close(self) -> None: ...


class Embedder(Protocol):
    """Sentence embeddings, L2-normalised rows; queries and passages may be encoded differently."""

    async def embed_queries(self, texts: list[str]) -> FloatMatrix: ...

    async def embed_passages(self, texts: list[str]) -> FloatMatrix: ...


class LiveEvents(Protocol):
    """Events for agents' screens (best effort: False when one could not be published)."""

    async def publish(self, merchant_id: str, kind: str, data: dict[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of a durable stream (an inbox partition, an outbox): where it is, what it says."""

    stream: str
    entry_id: str
    payload: dict[str, Any]


class StreamReader(Protocol):
    """A consumer of durable streams (``StreamConsumer`` on Redis): its own pending entries
    first after a restart, acknowledged only when handled."""

    async def setup(self) -> None: ...

    async def read(self, count: int = 64, block_ms: int = 1000) -> list[StreamEntry]: ...

    async def ack(self, entries: Sequence[StreamEntry]) -> None: ...


class DeliveryLedger(Protocol):
    """What delivery records about each reply (``Outbox`` on Redis): sent markers (a reply is
    sent at most once per outbox id), unreachable customers, dead letters."""

    async def already_sent(self, reply: OutboundReply) -> bool: ...

    async def mark_sent(self, reply: OutboundReply, provider_message_id: str) -> None: ...

    async def unreachable_since(self, reply: OutboundReply) -> float | None: ...

    async def mark_unreachable(self, reply: OutboundReply, reason: str) -> None: ...

    async def dead_letter(self, reply: OutboundReply, reason: str, attempts: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Completion:
    """A language model's answer and what it cost (the response's ``usage.total_tokens``)."""

    text: str
    tokens: int


class LanguageModelError(Exception):
    """The model gave no usable answer (HTTP error, timeout, malformed JSON): say it plainly."""


class LanguageModel(Protocol):
    """A chat-completions model (``OpenAICompatibleModel``); raises LanguageModelError."""

    async def complete(self, messages: list[dict[str, str]], *, max_tokens: int) -> Completion: ...


class TokenBudget(Protocol):
    """Tokens a merchant spent on generated phrasing per UTC day."""

    async def spent(self, merchant_id: str, day: str) -> int: ...

    async def spend(self, merchant_id: str, day: str, tokens: int) -> None: ...


class SettlementLeases(Protocol):
    """A short exclusive claim on settling one merchant's date, shared by every replica: only
    the holder computes it until it releases the claim or the claim expires."""

    async def acquire(self, merchant_id: str, date: str, ttl_ms: int) -> str | None:
        """A token when this caller now holds the date; None when someone else does."""
        ...

    async def release(self, merchant_id: str, date: str, token: str) -> None:
        """Let go if ``token`` still holds it (a claim that expired and was retaken by another
        replica is not released by the first)."""
        ...


class SharedVectorCache(Protocol):
    """A cache of float32 vectors shared by every process (L2, Redis): best effort, so a
    failed read is a miss and a failed write is dropped, never an error for the caller."""

    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def put_many(self, items: dict[str, bytes], ttl_s: int) -> None: ...


# -- store platforms (Salla, Zid, Shopify) ------------------------------------------------
class StoreUnreachable(Exception):
    """The platform could not be reached (a fixed reason: never the remote's words)."""


class SyncFailed(Exception):
    """A run stopped; ``reason`` is one of a fixed set and lands in ``sync.last_error``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreHttp(Protocol):
    async def send(self, request: StoreRequest) -> StoreResponse:
        """One call, no redirects, through the egress guard; raises ``StoreUnreachable``."""
        ...
