"""Port adapters over Serve deployment handles: the only place the engine calls Serve."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.services.ports import Candidate, FloatMatrix


class ServeEmbedder:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        result = await self._handle.embed_queries.remote(texts)
        return np.asarray(result, dtype=np.float32)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        result = await self._handle.embed_passages.remote(texts)
        return np.asarray(result, dtype=np.float32)


class ServeReranker:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def rerank(self, query: str, candidates: list[Candidate]) -> list[tuple[str, float]]:
        payload = [(c.id, c.text, c.score) for c in candidates]
        result = await self._handle.rerank.remote(query, payload)
        return [(str(i), float(s)) for i, s in result]
