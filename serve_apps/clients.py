"""Port adapters over Serve deployment handles: the only place the engine calls Serve."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.services.ports import FloatMatrix


class ServeEmbedder:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        result = await self._handle.embed_queries.remote(texts)
        return np.asarray(result, dtype=np.float32)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        result = await self._handle.embed_passages.remote(texts)
        return np.asarray(result, dtype=np.float32)
