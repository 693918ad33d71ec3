"""An ``Embedder`` port running the ONNX encoder in a worker thread of this process.

For single, latency-bound queries where a Serve hop costs as much as the model: the admin
product search in the gateway. Measured on this 2-core box: a Serve handle call from the
gateway process costs ~5 ms before any model runs (platform notes: ~6 ms of CPU per call), an
e5 query itself ~8 ms (2 threads; 9.4 ms with 1); `bench/admin.py` products.search p95 25 ms
through Serve, ~20 ms with this. The bot's path keeps the Serve embedder, whose
micro-batching is what carries load.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from models.encoder import Embeddings, Kind, OnnxEncoder
from models.registry import ensure_models


class ThreadedEmbedder:
    """Loads the model on first use (no I/O at construction) and encodes off the event loop."""

    def __init__(self, models_dir: Path, model: str = "e5", threads: int = 1) -> None:
        self._models_dir = models_dir
        self._model = model
        self._threads = threads
        self._encoder: OnnxEncoder | None = None
        self._lock = threading.Lock()

    def _load(self) -> OnnxEncoder:
        with self._lock:
            if self._encoder is None:
                path = ensure_models(self._models_dir, names=(self._model,))[self._model]
                self._encoder = OnnxEncoder(path, threads=self._threads)
            return self._encoder

    def _encode(self, texts: list[str], kind: Kind) -> Embeddings:
        return self._load().encode(texts, kind)

    async def embed_queries(self, texts: list[str]) -> Embeddings:
        return await asyncio.to_thread(self._encode, texts, "query")

    async def embed_passages(self, texts: list[str]) -> Embeddings:
        return await asyncio.to_thread(self._encode, texts, "passage")
