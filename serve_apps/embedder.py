"""Ray Serve deployment serving one sentence encoder (e5 or USE) over ONNX Runtime.

Queries arrive one at a time from many conversations, and one ONNX run over 32 short texts costs
far less than 32 runs, so single query texts are micro-batched across callers with
``@serve.batch``. Passages come from indexing jobs that already send large lists, so they run
directly; both run in a worker thread so a long ONNX call never stalls the replica's event loop
(health checks, batch collection for the next queries).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import cast

import numpy as np
from ray import serve
from ray.serve import Deployment

from models.encoder import Embeddings, OnnxEncoder
from models.registry import ensure_models

logger = logging.getLogger(__name__)

QUERY_BATCH_SIZE = 32
# No waiting for company: a lone query (low load, an admin search) runs at once, and under load
# queries that arrive while a batch runs queue up and form the next batch anyway. The old 3 ms
# wait was pure latency for every message below saturation (bench/ttfr.py).
QUERY_BATCH_WAIT_S = 0.0
PASSAGE_BATCH_SIZE = 64


@serve.deployment(
    # Callers are many conversations each sending one query; this bounds the queue per replica
    # so Serve spreads or back-pressures instead of letting latency grow without limit.
    max_ongoing_requests=64,
    # Small so an embedder fits on a 2-core box next to the rest of the engine; the ONNX
    # pool size is set separately (``threads``) because Ray does not pin CPUs.
    ray_actor_options={"num_cpus": 0.5},
    # Access logs cost about a quarter of Serve throughput on these cores (platform notes).
    logging_config={"enable_access_log": False},
)
class EmbedderDeployment:
    """One model per replica; ``model`` is a name from ``models.spec.SPECS``."""

    def __init__(
        self, models_dir: str, model: str = "e5", threads: int = 1, passage_threads: int = 2
    ) -> None:
        # ensure_models is a hash check when the model is prebuilt, and a locked, verified build
        # when it is not, so replicas starting together never load a half-written model.
        path = ensure_models(Path(models_dir), names=(model,))[model]
        self._encoder = OnnxEncoder(path, threads=threads, batch_size=QUERY_BATCH_SIZE)
        # Two sessions over one model file: live queries keep their small, latency-tuned pool
        # (1 thread measured best under concurrent load), while an indexing batch uses more
        # threads for throughput without resizing the query pool.
        self._passages = OnnxEncoder(path, threads=passage_threads, batch_size=PASSAGE_BATCH_SIZE)
        self._model = model
        logger.info(
            "embedder %s ready (dim %d, %d query / %d passage threads)",
            model,
            self._encoder.dim,
            threads,
            passage_threads,
        )

    @property
    def dim(self) -> int:
        return self._encoder.dim

    def ready(self) -> bool:
        """Cheap liveness probe for callers that want to wait for the replica to be up."""
        return True

    def _empty(self) -> Embeddings:
        return np.zeros((0, self._encoder.dim), dtype=np.float32)

    @serve.batch(max_batch_size=QUERY_BATCH_SIZE, batch_wait_timeout_s=QUERY_BATCH_WAIT_S)
    async def _embed_query_batch(self, texts: list[str]) -> list[Embeddings]:
        """One ONNX run for query texts submitted by many concurrent callers."""
        vectors = await asyncio.to_thread(self._encoder.encode, texts, "query")
        return list(vectors)

    async def embed_queries(self, texts: list[str]) -> Embeddings:
        """(n, dim) unit rows; each text joins the shared query batch on its own."""
        if not texts:
            return self._empty()
        rows = await asyncio.gather(*(self._embed_query_batch(text) for text in texts))
        return np.stack(rows).astype(np.float32, copy=False)

    async def embed_passages(self, texts: list[str]) -> Embeddings:
        """(n, dim) unit rows; the encoder sorts and batches the list itself."""
        if not texts:
            return self._empty()
        return await asyncio.to_thread(self._passages.encode, texts, "passage")


def build_embedder(
    models_dir: str, model: str = "e5", threads: int = 1, passage_threads: int = 2
) -> serve.Application:
    """The application for ``serve.run``; deployment name ``embedder-<model>`` lets e5 and USE
    run side by side in one Serve app tree."""
    # mypy does not apply class decorators, so it still sees the plain class here.
    deployment = cast(Deployment, EmbedderDeployment)
    return deployment.options(name=f"embedder-{model}").bind(
        models_dir, model, threads, passage_threads
    )
