"""Lexical scoring and hybrid fusion over a small first-stage candidate set.

Dense retrieval finds products "by meaning" but is weak exactly where shoppers are precise:
SKUs, brand names, model numbers ("iPhone 15"), and Arabic spelling variants of the same
word. BM25 over the *candidate set* (not the whole catalogue) fixes that cheaply: the vector
store already narrowed things to a few dozen candidates, so IDF is computed on the fly with
no index to maintain, and the scores are normalised so they can be mixed with cosine
similarity. Pure Python + numpy, deterministic; safe to call inside a turn.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.domain.text import lexical_tokens


@dataclass(frozen=True, slots=True)
class Candidate:
    """A first-stage hit offered to a second stage: id, the text it matched on, its score."""

    id: str
    text: str
    score: float


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


# A document as lexical scoring sees it: its token count and how often each query term occurs
# in it (in query-term order). Derived from the text by :func:`term_stats`, or read off a
# corpus index built over the same text (:meth:`Bm25Index.term_stats`): same integers, so the
# same scores, without tokenising the candidate again on every turn.
TermStats = tuple[int, tuple[int, ...]]
# (query terms, candidate ids) -> per candidate its TermStats, or None where it is unknown.
StatsLookup = Callable[[Sequence[str], Sequence[str]], Sequence[TermStats | None]]


def query_terms(query: str) -> list[str]:
    """The distinct lexical tokens of a query, in order: what :func:`lexical_scores` weighs."""
    return list(dict.fromkeys(lexical_tokens(query)))


def term_stats(terms: Sequence[str], tokens: Sequence[str]) -> TermStats:
    return len(tokens), tuple(tokens.count(t) for t in terms)


def lexical_scores(
    query: str, docs: Sequence[str], stats: Sequence[TermStats | None] | None = None
) -> list[float]:
    """BM25 of ``query`` against each of ``docs``, normalised to [0, 1].

    The normaliser is the score an "ideal" document would get (every distinct query term
    once, average length), and each term's contribution is capped at that ideal, so a value
    is "the IDF-weighted share of the query this doc matches" (1.0 = all of it) and is
    comparable across queries, unlike dividing by the best score in the set (which would
    hand 1.0 to the least-bad of many bad candidates). Long documents get partial credit.

    ``stats`` (optional, one per doc, for the terms of :func:`query_terms`) spares tokenising
    the docs it covers; a ``None`` entry is tokenised from its text.
    """
    if not docs:
        return []
    q_terms = query_terms(query)
    if not q_terms:
        return [0.0] * len(docs)
    known = stats if stats is not None else [None] * len(docs)
    rows = [
        s if s is not None else term_stats(q_terms, lexical_tokens(d))
        for s, d in zip(known, docs, strict=True)
    ]
    return _scores_of(q_terms, rows)


def _scores_of(q_terms: Sequence[str], rows: Sequence[TermStats]) -> list[float]:
    lengths = np.array([length for length, _ in rows], dtype=np.float64)
    avgdl = float(lengths.mean()) or 1.0
    n_docs = len(rows)
    idf = {t: _idf(sum(1 for _, tfs in rows if tfs[k]), n_docs) for k, t in enumerate(q_terms)}
    ideal = sum(idf.values())

    scores = np.zeros(n_docs, dtype=np.float64)
    for i, (_, tfs) in enumerate(rows):
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * lengths[i] / avgdl)
        for k, term in enumerate(q_terms):
            tf = tfs[k]
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


# --- corpus-level BM25 and calibrated hybrid fusion ------------------------------------------

BM25_CORPUS_K1: Final = 1.5
BM25_CORPUS_B: Final = 0.75


class Bm25Index:
    """Okapi BM25 over a whole (per-merchant) corpus, on :func:`engine.domain.text.lexical_tokens`.

    Why a corpus index and not only :func:`lexical_scores` over dense candidates: a product the
    dense model ranks 40th ("جزمة" vs "حذاء", a SKU, a brand) is never a candidate, so
    candidate-set BM25 cannot rescue it. Small and in-process (a merchant's catalogue is at
    most tens of thousands of short texts): an inverted index of term -> (doc, tf) arrays,
    scored with numpy; no Serve call, microseconds to a few milliseconds per query.
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        k1: float = BM25_CORPUS_K1,
        b: float = BM25_CORPUS_B,
        *,
        bigrams: bool = True,
    ) -> None:
        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        self.ids = list(ids)
        self._bigrams = bigrams
        self._k1 = k1
        self._b = b
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = np.zeros(len(texts), dtype=np.float64)
        self._tokens = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            tokens = lexical_tokens(text)
            self._tokens[i] = len(tokens)
            counts = Counter(self._with_bigrams(tokens))
            lengths[i] = sum(counts.values())
            for term, tf in counts.items():
                postings.setdefault(term, []).append((i, tf))
        self._n = len(texts)
        self._position = {doc_id: i for i, doc_id in enumerate(self.ids)}
        avgdl = float(lengths.mean()) if self._n else 1.0
        self._norm = k1 * (1.0 - b + b * lengths / (avgdl or 1.0))
        self._postings = {
            t: (np.array([d for d, _ in p], dtype=np.int64), np.array([f for _, f in p], float))
            for t, p in postings.items()
        }
        self._idf = {
            t: math.log(1.0 + (self._n - len(p) + 0.5) / (len(p) + 0.5))
            for t, p in postings.items()
        }

    def __len__(self) -> int:
        return self._n

    def _terms(self, text: str) -> list[str]:
        """Unigrams plus adjacent-pair bigrams: names ("حمزة بن عبد المطلب", "air max") score
        as phrases. Measured on ARCD train: the bigram index fuses better than unigrams."""
        return self._with_bigrams(lexical_tokens(text))

    def _with_bigrams(self, tokens: list[str]) -> list[str]:
        if not self._bigrams:
            return tokens
        # "_" never occurs in a token (the tokenizer splits on it), so a bigram never shares a
        # posting with a unigram: the unigram postings are exact token counts (term_stats).
        return tokens + [f"{a}_{b}" for a, b in itertools.pairwise(tokens)]

    def term_stats(self, terms: Sequence[str], ids: Sequence[str]) -> list[TermStats | None]:
        """:func:`term_stats` of indexed documents, read off the postings (None: not indexed).

        Why: coverage scores every candidate of every turn, and tokenising its text again
        (normalisation, synonyms, stemming) was most of a turn's ranking time; the index holds
        the same counts already. Valid for the text the document was indexed with only.
        Measured (``bench/ranking_cost.py``, 200 questions, CPU per turn of products and
        knowledge ranking): demo store 1.8-2.0 ms tokenising, 0.64-0.77 ms with these counts
        (and filters normalising only what they read); product set 2.5-3.2 ms, 0.9-1.4 ms.
        """
        positions = [self._position.get(i, -1) for i in ids]
        where = np.array([max(p, 0) for p in positions], dtype=np.int64)
        columns: list[npt.NDArray[np.int64]] = []
        for term in terms:
            posting = self._postings.get(term)
            if posting is None or not len(where):
                columns.append(np.zeros(len(where), dtype=np.int64))
                continue
            docs, tf = posting
            at = np.minimum(np.searchsorted(docs, where), len(docs) - 1)
            columns.append(np.where(docs[at] == where, tf[at], 0).astype(np.int64))
        return [
            (int(self._tokens[p]), tuple(int(c[k]) for c in columns)) if p >= 0 else None
            for k, p in enumerate(positions)
        ]

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """Raw BM25 score of every document, in index order (0 for no overlap)."""
        out = np.zeros(self._n, dtype=np.float64)
        for term in dict.fromkeys(self._terms(query)):
            posting = self._postings.get(term)
            if posting is None:
                continue
            docs, tf = posting
            out[docs] += self._idf[term] * tf * (self._k1 + 1.0) / (tf + self._norm[docs])
        return out


def zscores(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Standardise one signal over the candidate set so signals with different scales mix.

    Cosines of e5 live in [0.7, 0.9]; BM25 is unbounded: min-max would hand 1.0 to the least bad
    of many bad candidates, z-scores keep "how far above the crowd" which is what fusion needs.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return arr
    std = float(arr.std())
    if std < 1e-9:
        return np.zeros_like(arr)
    return (arr - float(arr.mean())) / std


def fuse_signals(
    signals: dict[str, npt.ArrayLike], weights: dict[str, float]
) -> npt.NDArray[np.float64]:
    """Weighted sum of z-scored signals; the ONE fusion function eval and the bot both use.

    ``signals`` maps a name ("dense", "bm25", "use") to one score per candidate; names without a
    weight are ignored, weighted names missing from ``signals`` contribute nothing.
    """
    total: npt.NDArray[np.float64] | None = None
    for name, w in weights.items():
        if name not in signals or w == 0.0:
            continue
        z = w * zscores(signals[name])
        total = z if total is None else total + z
    if total is None:
        n = len(next(iter(signals.values()))) if signals else 0  # type: ignore[arg-type]
        return np.zeros(n, dtype=np.float64)
    return total


# Products. Tuned on ARCD train/ only when dense was one vector per passage: train nDCG@10
# 0.8987; the store evaluation (`kaleem eval store`) holds hit@3 1.00 with them.
HYBRID_WEIGHTS: Final[dict[str, float]] = {"dense": 0.5, "bm25": 0.2, "cov": 0.3}
# Knowledge, where dense is the best ~40-word window of a chunk. Tuned on ARCD train/ only:
# `kaleem eval tune --dataset ../shared/datasets/arcd/train --step 0.1` -> train nDCG@10 0.9019
# (test, never tuned on: 0.9019). A re-tune is a reviewable diff of these numbers.
KNOWLEDGE_WEIGHTS: Final[dict[str, float]] = {"dense": 0.5, "bm25": 0.1, "cov": 0.4}
# Products, tuned on the product relevance set's train split only (engine/evaluation/data/
# products; `kaleem eval tune --kind products --step 0.1`).
PRODUCT_WEIGHTS: Final[dict[str, float]] = {"dense": 0.3, "bm25": 0.1, "cov": 0.6}
HYBRID_DEPTH: Final = 30


def hybrid_rank(
    signals: dict[str, dict[str, float]],
    weights: dict[str, float] | None = None,
) -> list[tuple[str, float]]:
    """Fuse per-signal candidate lists (id -> raw score) into one ranking, best first.

    Each signal returns only its own top-k, so a candidate may lack a score from some signal;
    it gets that signal's minimum in the set ("no better than the worst one it returned"),
    which keeps z-scores honest without a second lookup. Ties keep first-seen order.
    """
    w = HYBRID_WEIGHTS if weights is None else weights
    ids = list(dict.fromkeys(i for scores in signals.values() for i in scores))
    if not ids:
        return []
    arrays: dict[str, npt.ArrayLike] = {}
    for name, scores in signals.items():
        if not scores:
            continue
        floor = min(scores.values())
        arrays[name] = [scores.get(i, floor) for i in ids]
    fused = fuse_signals(arrays, w)
    order = sorted(range(len(ids)), key=lambda i: -fused[i])
    return [(ids[i], float(fused[i])) for i in order]


def candidate_signals(
    query: str,
    dense: dict[str, float],
    bm25: dict[str, float],
    texts: Mapping[str, str],
    stats: StatsLookup | None = None,
) -> dict[str, dict[str, float]]:
    """The three signals :func:`hybrid_rank` fuses, for the union of both first stages.

    ``cov`` is :func:`lexical_scores` over the union: the IDF-weighted share of the query's
    terms each candidate contains. Corpus BM25 finds candidates; coverage separates the
    close ones (two paragraphs of one article, two sizes of one shoe). ``stats`` supplies
    precomputed term counts for the candidates it knows (see :data:`TermStats`).
    """
    ids = list(dict.fromkeys([*dense, *bm25]))
    cov = lexical_scores(query, [texts.get(i, "") for i in ids], known_stats(query, ids, stats))
    return {"dense": dense, "bm25": bm25, "cov": dict(zip(ids, cov, strict=True))}


def known_stats(
    query: str, ids: Sequence[str], stats: StatsLookup | None
) -> Sequence[TermStats | None] | None:
    """``stats`` asked for ``ids`` with the query's terms (None without a lookup)."""
    return None if stats is None or not ids else stats(query_terms(query), ids)


# Scores closer than this (in z-score units) are a tie, broken by stock: two listings of one
# product (two sellers' copies, a colour relisted) differ by rounding, not by relevance.
STOCK_TIE: Final = 1e-3


def product_rank(
    signals: dict[str, dict[str, float]],
    weights: dict[str, float] | None = None,
) -> list[tuple[str, float]]:
    """:func:`hybrid_rank` for products, with in-stock first among ties.

    ``signals["stock"]`` (1.0 in stock, 0.0 not) is never fused: availability says nothing
    about what the shopper asked, so it only orders equally relevant products.
    """
    stock = signals.get("stock", {})
    fused = hybrid_rank({k: v for k, v in signals.items() if k != "stock"}, weights)
    return sorted(fused, key=lambda r: (-round(r[1] / STOCK_TIE), -stock.get(r[0], 1.0)))
