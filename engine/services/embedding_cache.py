"""Query embeddings cached in two tiers in front of the Serve embedder (the ``Embedder`` port).

Shoppers repeat themselves: the same few hundred questions ("كم رسوم الشحن؟", "return policy")
make up most of a store's traffic, and an e5 run is the costliest step of a turn that a
dictionary lookup can replace. L1 is a bounded LRU in the calling process (no I/O at all); L2
is shared by every host through Redis with a TTL, so a question one host embedded is a round
trip, not a model run, for the others and for a host after a restart.

The key is the model's identity plus the text the encoder sees with its whitespace collapsed
and the text itself is what gets encoded, so a cached vector is exactly the vector the model
would return: no answer can change because of the cache. Passages (indexing) are not cached:
they rarely repeat and would only churn the LRU.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import OrderedDict

import numpy as np

from engine.services.ports import Embedder, FloatMatrix, SharedVectorCache
from observability import metrics

CACHE_NAME = "query_embedding"


def normalise_query(text: str) -> str:
    """Whitespace only: e5's tokenizer is case- and diacritic-sensitive, so folding more would
    map different model inputs to one vector."""
    return " ".join(text.split())


class CachedQueryEmbedder:
    """An ``Embedder`` whose ``embed_queries`` consults L1, then L2, then the model once for
    every text still missing (one call for the whole batch)."""

    def __init__(
        self,
        inner: Embedder,
        model: str,
        *,
        shared: SharedVectorCache | None = None,
        max_entries: int = 4096,
        ttl_s: int = 86_400,
    ) -> None:
        self._inner = inner
        self._model = model
        self._shared = shared
        self._max = max(1, max_entries)
        self._ttl = ttl_s
        self._l1: OrderedDict[str, FloatMatrix] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[dict[str, FloatMatrix]]] = {}
        self.counts = {"l1_hit": 0, "l1_miss": 0, "l1_coalesced": 0, "l2_hit": 0, "l2_miss": 0}

    def key(self, text: str) -> str:
        """Bounded size whatever the text (a turn reads at most 1,024 characters anyway)."""
        digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return f"{self._model}:{digest}"

    def _count(self, tier: str, outcome: str, n: int) -> None:
        if n:
            self.counts[f"{tier}_{outcome}"] += n
            metrics.CACHE.labels(CACHE_NAME, tier, outcome).inc(n)

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        if not texts:
            return await self._inner.embed_queries([])
        norm = [normalise_query(t) for t in texts]
        keys = [self.key(t) for t in norm]
        text_of = dict(zip(keys, norm, strict=True))
        rows: dict[str, FloatMatrix] = {}
        for k in keys:
            row = self._l1.get(k)
            if row is not None:
                self._l1.move_to_end(k)
                rows[k] = row
        missed = sum(1 for k in keys if k not in rows)
        self._count("l1", "hit", len(keys) - missed)
        self._count("l1", "miss", missed)
        missing = [k for k in text_of if k not in rows]
        # A question another turn of this process is already fetching is waited for, not
        # fetched again: a burst of one hot question (a broadcast, a flash sale, a flood of one
        # text) otherwise put one model run per copy in the embedder's queue.
        waits = {k: self._inflight[k] for k in missing if k in self._inflight}
        self._count("l1", "coalesced", len(waits))
        own = [k for k in missing if k not in waits]
        mine: asyncio.Future[dict[str, FloatMatrix]] | None = None
        if own:
            # A task of its own, so a cancelled turn does not cancel the fetch its waiters need.
            mine = asyncio.ensure_future(self._fetch(own, text_of))
            for k in own:
                self._inflight[k] = mine
            mine.add_done_callback(functools.partial(self._landed, own))
            waits.update(dict.fromkeys(own, mine))
        for flight in dict.fromkeys(waits.values()):
            try:
                got = await asyncio.shield(flight)
            except Exception:
                if flight is mine:
                    raise
                # Another turn's fetch failed: this one tries on its own, once.
                got = await self._fetch([k for k, f in waits.items() if f is flight], text_of)
            rows.update({k: got[k] for k, f in waits.items() if f is flight})
        return np.stack([rows[k] for k in keys]).astype(np.float32, copy=False)

    def _landed(self, keys: list[str], flight: asyncio.Future[dict[str, FloatMatrix]]) -> None:
        for k in keys:
            if self._inflight.get(k) is flight:
                del self._inflight[k]
        if not flight.cancelled():
            flight.exception()  # retrieved: every waiter may be gone

    async def _fetch(self, keys: list[str], text_of: dict[str, str]) -> dict[str, FloatMatrix]:
        """L2, then one model call for every text still missing; both tiers learn the result."""
        rows: dict[str, FloatMatrix] = {}
        missing = keys
        if self._shared is not None:
            found = await self._shared.get_many(keys)
            missing = []
            for k, blob in zip(keys, found, strict=True):
                if blob is None:
                    missing.append(k)
                    continue
                rows[k] = np.frombuffer(blob, dtype=np.float32).copy()
                self._remember(k, rows[k])
            self._count("l2", "hit", len(keys) - len(missing))
            self._count("l2", "miss", len(missing))
        if missing:
            computed = await self._inner.embed_queries([text_of[k] for k in missing])
            fresh: dict[str, bytes] = {}
            for j, k in enumerate(missing):
                rows[k] = np.asarray(computed[j], dtype=np.float32)
                self._remember(k, rows[k])
                fresh[k] = rows[k].tobytes()
            if self._shared is not None:
                await self._shared.put_many(fresh, self._ttl)
        return rows

    def _remember(self, key: str, row: FloatMatrix) -> None:
        self._l1[key] = row
        self._l1.move_to_end(key)
        while len(self._l1) > self._max:
            self._l1.popitem(last=False)

    @property
    def size(self) -> int:
        """Entries held in L1 (no ``__len__``: an empty cache must still be truthy)."""
        return len(self._l1)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        return await self._inner.embed_passages(texts)
