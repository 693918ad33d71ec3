"""Second-stage ranking as a Serve deployment (off the conversation hot path).

No cross-encoder can be installed offline here, so the second stage fuses the first stage's
dense score with a lexical (BM25, Arabic-normalised) score computed over the candidates: the
lexical signal rescues exact names, SKUs and dialect spellings that the dense model blurs.

Where it runs, and why not per customer message: conversation hosts now do corpus BM25 +
z-score fusion themselves (``engine.services.retrieval``), so a turn makes ONE Serve call (the query
embedding) instead of two; measured on ARCD, the model second stage available offline (USE
similarity over the fused candidates) added +0.005 nDCG@10, not worth ~6 ms of Serve CPU per
message. The deployment still serves retrievers built with a ``Reranker`` (the gateway's
admin search) and is the place to put a real cross-encoder once one can be installed.
"""

from __future__ import annotations

from typing import Any

from ray import serve

from engine.domain.ranking import rerank
from engine.services.ports import Candidate


@serve.deployment(
    name="Reranker",
    num_replicas=1,
    max_ongoing_requests=128,
    ray_actor_options={"num_cpus": 0.25},
    # Access logs cost about a quarter of Serve throughput on these cores (platform notes).
    logging_config={"enable_access_log": False},
)
class RerankerDeployment:
    def __init__(self, dense_weight: float = 0.7) -> None:
        self._w = dense_weight

    async def rerank(
        self, query: str, candidates: list[tuple[str, str, float]]
    ) -> list[tuple[str, float]]:
        return rerank(
            query, [Candidate(id=i, text=t, score=s) for i, t, s in candidates], w_dense=self._w
        )

    def ready(self) -> bool:
        return True


def build_reranker() -> Any:
    return RerankerDeployment.bind()  # type: ignore[attr-defined]
