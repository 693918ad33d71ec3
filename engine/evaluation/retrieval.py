"""Retrieval quality on a BEIR-layout dataset (ARCD): nDCG@10, Recall@1/10, MRR.

Runs the bot's own ranking code in-process: :class:`engine.domain.ranking.Bm25Index` for the lexical
signal, the same encoder (via :class:`models.encoder.OnnxEncoder`, no Ray) for the dense one,
and :func:`engine.domain.ranking.hybrid_rank` to fuse them, each signal contributing its top
``HYBRID_DEPTH`` like the engine does. Passage embeddings are cached on disk by content hash,
so re-running or tuning costs only the queries.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.domain.catalog import KnowledgeChunk, Product, product_from_mapping
from engine.domain.ranking import (
    HYBRID_DEPTH,
    KNOWLEDGE_WEIGHTS,
    Bm25Index,
    candidate_signals,
    hybrid_rank,
    product_rank,
)
from engine.domain.text import expand_for_embedding
from engine.services.indexing import product_index_items
from engine.services.retrieval import lexical_text
from models.encoder import Embeddings

EncodeFn = Callable[[Sequence[str], str], Embeddings]


@dataclass(frozen=True, slots=True)
class Split:
    corpus_ids: list[str]
    corpus_texts: list[str]
    corpus_titles: list[str]
    corpus_bodies: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


def load_split(path: Path) -> Split:
    """BEIR layout: corpus.jsonl, queries.jsonl, qrels.tsv (header line, tab-separated)."""
    corpus_ids, corpus_texts, titles, bodies = [], [], [], []
    with (path / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                doc = json.loads(line)
                corpus_ids.append(str(doc["_id"]))
                title = str(doc.get("title") or "")
                text = str(doc.get("text") or "")
                corpus_texts.append(f"{title}\n{text}" if title else text)
                titles.append(title)
                bodies.append(text)
    qrels: dict[str, dict[str, int]] = {}
    with (path / "qrels.tsv").open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and parts[0] == "query-id":
                continue
            if len(parts) >= 3 and int(parts[2]) > 0:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    query_ids, query_texts = [], []
    with (path / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in qrels:
                    query_ids.append(str(q["_id"]))
                    query_texts.append(str(q["text"]))
    return Split(corpus_ids, corpus_texts, titles, bodies, query_ids, query_texts, qrels)


# --- metrics -----------------------------------------------------------------------------------


def ndcg_at(ranked: Sequence[str], rel: dict[str, int], k: int = 10) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    return len(set(ranked[:k]) & set(rel)) / len(rel) if rel else 0.0


def reciprocal_rank(ranked: Sequence[str], rel: dict[str, int]) -> float:
    for i, d in enumerate(ranked):
        if d in rel:
            return 1.0 / (i + 1)
    return 0.0


def metrics(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    qids = [q for q in runs if q in qrels]
    n = len(qids) or 1
    return {
        "ndcg@10": round(sum(ndcg_at(runs[q], qrels[q]) for q in qids) / n, 4),
        "recall@1": round(sum(recall_at(runs[q], qrels[q], 1) for q in qids) / n, 4),
        "recall@10": round(sum(recall_at(runs[q], qrels[q], 10) for q in qids) / n, 4),
        "mrr": round(sum(reciprocal_rank(runs[q], qrels[q]) for q in qids) / n, 4),
        "queries": len(qids),
    }


# --- signals -----------------------------------------------------------------------------------


def cached_encode(
    encode: EncodeFn, texts: Sequence[str], kind: str, cache_dir: Path | None, tag: str
) -> Embeddings:
    """Encode ``texts``; with ``cache_dir`` the matrix is kept keyed by model + content hash."""
    if cache_dir is None:
        return encode(texts, kind)
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{tag}|{kind}|".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\x00")
    path = cache_dir / f"{tag}-{kind}-{h.hexdigest()}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    vectors = encode(texts, kind)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass(slots=True)
class Signals:
    """Per query: each signal's top-``depth`` candidates as id -> raw score."""

    per_query: dict[str, dict[str, dict[str, float]]]


def compute_signals(
    split: Split,
    encode: EncodeFn,
    *,
    tag: str = "e5",
    depth: int = HYBRID_DEPTH,
    cache_dir: Path | None = None,
) -> Signals:
    """Per query, exactly what the bot computes for knowledge: dense = the best window of each
    passage (:meth:`engine.domain.catalog.KnowledgeChunk.window_texts`, as indexed), top-``depth``;
    corpus BM25 top-``depth``; :func:`engine.domain.ranking.candidate_signals` over their union.
    An ARCD passage plays one knowledge chunk (qrels are per passage)."""
    bm25 = Bm25Index(split.corpus_ids, split.corpus_texts)
    texts = dict(zip(split.corpus_ids, split.corpus_texts, strict=True))
    window_texts: list[str] = []
    owners: list[int] = []
    for n, (cid, title, body) in enumerate(
        zip(split.corpus_ids, split.corpus_titles, split.corpus_bodies, strict=True)
    ):
        for w in KnowledgeChunk(cid, cid, title, body).window_texts():
            window_texts.append(w)
            owners.append(n)
    sims = _best_vector(encode, split.query_texts, window_texts, owners, cache_dir, tag, len(texts))
    return Signals(
        dict(zip(split.query_ids, _candidates(split, bm25, sims, texts, depth), strict=True))
    )


def _best_vector(
    encode: EncodeFn,
    queries: Sequence[str],
    vector_texts: list[str],
    owners: list[int],
    cache_dir: Path | None,
    tag: str,
    documents: int,
) -> npt.NDArray[np.float32]:
    """Query x document similarity, a document scoring by the best of its vectors (knowledge
    windows, a product's title and description vectors), as the vector search does."""
    vectors = cached_encode(encode, vector_texts, "passage", cache_dir, tag)
    encoded = cached_encode(
        encode, [expand_for_embedding(q) for q in queries], "query", cache_dir, tag
    )
    item_sims = encoded @ vectors.T
    sims = np.full((len(queries), documents), -1.0, dtype=np.float32)
    owner = np.asarray(owners, dtype=np.int64)
    for qi in range(len(queries)):
        np.maximum.at(sims[qi], owner, item_sims[qi])
    return sims


def _candidates(
    split: Split | ProductSplit,
    bm25: Bm25Index,
    sims: npt.NDArray[np.float32],
    texts: dict[str, str],
    depth: int,
) -> list[dict[str, dict[str, float]]]:
    """Per query: dense top-``depth`` and BM25 top-``depth``, and the signals over their union."""
    ids = list(texts)
    out = []
    for qi, query in enumerate(split.query_texts):
        lex = bm25.scores(query)
        top_l = np.argsort(-lex, kind="stable")[:depth]
        top_d = np.argsort(-sims[qi], kind="stable")[:depth]
        dense = {ids[i]: float(sims[qi, i]) for i in top_d}
        lexical = {ids[i]: float(lex[i]) for i in top_l if lex[i] > 0}
        out.append(candidate_signals(query, dense, lexical, texts))
    return out


Rank = Callable[[dict[str, dict[str, float]], dict[str, float]], list[tuple[str, float]]]


def run_fusion(
    signals: Signals, weights: dict[str, float], rank: Rank = hybrid_rank
) -> dict[str, list[str]]:
    return {qid: [d for d, _ in rank(sig, weights)[:10]] for qid, sig in signals.per_query.items()}


def evaluate(
    signals: Signals,
    qrels: dict[str, dict[str, int]],
    weights: dict[str, float],
    rank: Rank = hybrid_rank,
) -> dict[str, float]:
    return metrics(run_fusion(signals, weights, rank), qrels)


def tune(
    signals: Signals,
    qrels: dict[str, dict[str, int]],
    names: Sequence[str],
    step: float = 0.05,
    rank: Rank = hybrid_rank,
) -> tuple[dict[str, float], float]:
    """Grid search of convex weights (sum 1) maximising nDCG@10; use on train/ only."""
    grid = [round(i * step, 4) for i in range(round(1 / step) + 1)]
    best: tuple[dict[str, float], float] = ({}, -1.0)
    for combo in itertools.product(grid, repeat=len(names) - 1):
        rest = round(1.0 - sum(combo), 4)
        if rest < -1e-9:
            continue
        weights = dict(zip(names, [*combo, max(rest, 0.0)], strict=True))
        score = evaluate(signals, qrels, weights, rank)["ndcg@10"]
        if score > best[1]:
            best = (weights, score)
    return best


def default_weights() -> dict[str, float]:
    return dict(KNOWLEDGE_WEIGHTS)


def report(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# --- products: the graded product relevance set (engine/evaluation/data/products) -------------

PRODUCT_SET = Path(__file__).parent / "data" / "products"


@dataclass(frozen=True, slots=True)
class ProductSplit:
    products: list[Product]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


def load_products(path: Path = PRODUCT_SET, split: str | None = "test") -> ProductSplit:
    """``products.jsonl`` (catalogue rows as a merchant imports them) and ``queries.jsonl``
    (``{id, text, split, grades: {sku: 0-3}}``); ``split=None`` keeps every query."""
    with (path / "products.jsonl").open(encoding="utf-8") as fh:
        products = [product_from_mapping(json.loads(line)) for line in fh if line.strip()]
    ids, texts, qrels = [], [], {}
    with (path / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            q = json.loads(line)
            if split is not None and q["split"] != split:
                continue
            ids.append(str(q["id"]))
            texts.append(str(q["text"]))
            qrels[str(q["id"])] = {str(k): int(v) for k, v in q["grades"].items() if int(v) > 0}
    return ProductSplit(products, ids, texts, qrels)


def compute_product_signals(
    split: ProductSplit,
    encode: EncodeFn,
    *,
    tag: str = "e5",
    depth: int = HYBRID_DEPTH,
    cache_dir: Path | None = None,
) -> Signals:
    """Per query, what :meth:`engine.services.retrieval.Retriever.retrieve` computes for
    products: dense = the best of a product's vectors as indexed
    (:func:`engine.services.indexing.product_index_items`), top-``depth``; BM25 over
    :func:`engine.services.retrieval.lexical_text`, top-``depth``; coverage over the union."""
    skus = [p.sku for p in split.products]
    lexical = {p.sku: lexical_text(p) for p in split.products}
    bm25 = Bm25Index(skus, [lexical[s] for s in skus])
    item_texts: list[str] = []
    owners: list[int] = []
    for n, p in enumerate(split.products):
        for item in product_index_items(p):
            item_texts.append(item.text)
            owners.append(n)
    sims = _best_vector(encode, split.query_texts, item_texts, owners, cache_dir, tag, len(skus))
    in_stock = {p.sku: p.in_stock for p in split.products}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    for qid, signals in zip(
        split.query_ids, _candidates(split, bm25, sims, lexical, depth), strict=True
    ):
        signals["stock"] = {sku: 1.0 if in_stock[sku] else 0.0 for sku in signals["cov"]}
        per_query[qid] = signals
    return Signals(per_query)


def run_product_fusion(signals: Signals, weights: dict[str, float]) -> dict[str, list[str]]:
    """The product ranking as the engine orders it (:func:`product_rank`)."""
    return run_fusion(signals, weights, product_rank)


def evaluate_products(
    signals: Signals, qrels: dict[str, dict[str, int]], weights: dict[str, float]
) -> dict[str, float]:
    return evaluate(signals, qrels, weights, product_rank)


def tune_products(
    signals: Signals, qrels: dict[str, dict[str, int]], names: Sequence[str], step: float = 0.05
) -> tuple[dict[str, float], float]:
    """:func:`tune` for the product ranking; use on the train split only."""
    return tune(signals, qrels, names, step, product_rank)
