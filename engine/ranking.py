"""Lexical scoring and hybrid fusion over a small first-stage candidate set.

Dense retrieval finds products "by meaning" but is weak exactly where shoppers are precise:
SKUs, brand names, model numbers ("iPhone 15"), and Arabic spelling variants of the same
word. BM25 over the *candidate set* (not the whole catalogue) fixes that cheaply: the vector
store already narrowed things to a few dozen candidates, so IDF is computed on the fly with
no index to maintain, and the scores are normalised so they can be mixed with cosine
similarity. Pure Python + numpy, deterministic; safe to call inside a turn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Final

import numpy as np

from engine.ports import Candidate
from engine.text import lexical_tokens

BM25_K1: Final = 1.2
BM25_B: Final = 0.75
# Pseudo-documents that contain none of the query terms. A candidate set is small (10-50)
# and often topical (every candidate says "shoe"), so raw IDF would give a term present in
# all candidates a weight of ~0; the prior keeps common-but-relevant terms slightly positive
# and damps the wild IDF swings of tiny sets.
IDF_PRIOR_DOCS: Final = 10
DEFAULT_DENSE_WEIGHT: Final = 0.7


def _idf(n_containing: int, n_docs: int) -> float:
    total = n_docs + IDF_PRIOR_DOCS
    return math.log(1.0 + (total - n_containing + 0.5) / (n_containing + 0.5))


def lexical_scores(query: str, docs: Sequence[str]) -> list[float]:
    """BM25 of ``query`` against each of ``docs``, normalised to [0, 1].

    The normaliser is the score an "ideal" document would get (every distinct query term
    once, average length), and each term's contribution is capped at that ideal, so a value
    is "the IDF-weighted share of the query this doc matches" (1.0 = all of it) and is
    comparable across queries, unlike dividing by the best score in the set (which would
    hand 1.0 to the least-bad of many bad candidates). Long documents get partial credit.
    """
    if not docs:
        return []
    q_terms = list(dict.fromkeys(lexical_tokens(query)))
    if not q_terms:
        return [0.0] * len(docs)
    doc_tokens = [lexical_tokens(d) for d in docs]
    counts = [Counter(toks) for toks in doc_tokens]
    lengths = np.array([len(toks) for toks in doc_tokens], dtype=np.float64)
    avgdl = float(lengths.mean()) or 1.0
    n_docs = len(docs)
    idf = {t: _idf(sum(1 for c in counts if t in c), n_docs) for t in q_terms}
    ideal = sum(idf.values())

    scores = np.zeros(n_docs, dtype=np.float64)
    for i, tf_map in enumerate(counts):
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * lengths[i] / avgdl)
        for term in q_terms:
            tf = tf_map.get(term, 0)
            if tf:
                # BM25 term saturation, capped at the ideal (tf = 1 at average length): a doc
                # repeating one query word must not outscore a doc containing all of them.
                saturation = tf * (BM25_K1 + 1.0) / (tf + norm)
                scores[i] += idf[term] * min(saturation, 1.0)
    return [float(s) for s in np.clip(scores / ideal, 0.0, 1.0)]


def fuse(
    dense: Sequence[float], lexical: Sequence[float], w_dense: float = DEFAULT_DENSE_WEIGHT
) -> list[float]:
    """Convex combination of dense cosine (clipped to [0, 1]) and normalised lexical scores.

    Linear fusion of *absolute* scores (not reciprocal-rank fusion) on purpose: the caller
    compares the fused score with a threshold to decide "no good match", which needs scores
    that mean the same thing from one query to the next.
    """
    if len(dense) != len(lexical):
        raise ValueError(f"length mismatch: {len(dense)} dense vs {len(lexical)} lexical scores")
    if not 0.0 <= w_dense <= 1.0:
        raise ValueError(f"w_dense must be in [0, 1], got {w_dense}")
    d = np.clip(np.asarray(dense, dtype=np.float64), 0.0, 1.0)
    lex = np.clip(np.asarray(lexical, dtype=np.float64), 0.0, 1.0)
    return [float(x) for x in w_dense * d + (1.0 - w_dense) * lex]


def rerank(
    query: str, candidates: Sequence[Candidate], w_dense: float = DEFAULT_DENSE_WEIGHT
) -> list[tuple[str, float]]:
    """Re-order first-stage candidates by fused dense + lexical score, best first.

    Ties keep the first-stage order (stable sort), so equal scores never shuffle results
    between two runs of the same turn.
    """
    if not candidates:
        return []
    lexical = lexical_scores(query, [c.text for c in candidates])
    fused = fuse([c.score for c in candidates], lexical, w_dense)
    order = sorted(range(len(candidates)), key=lambda i: -fused[i])
    return [(candidates[i].id, fused[i]) for i in order]


class LexicalReranker:
    """:class:`engine.ports.Reranker` built on :func:`rerank`.

    The fallback second stage when no model reranker is deployed (tests, the embedded
    single-process mode) or when the Serve reranker is overloaded; CPU cost is microseconds
    per candidate, so running it on the event loop is fine.
    """

    def __init__(self, w_dense: float = DEFAULT_DENSE_WEIGHT) -> None:
        self._w_dense = w_dense

    async def rerank(self, query: str, candidates: list[Candidate]) -> list[tuple[str, float]]:
        return rerank(query, candidates, self._w_dense)
