"""Ranking reads the term counts the lexicon computed at build time instead of tokenising every
candidate again each turn: the answers (ranks and scores) are exactly those of tokenising."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pytest

from engine.demo import DEMO_CONTENT_TYPE, demo_catalog_bytes, demo_knowledge_bytes
from engine.domain.catalog import KnowledgeDoc, Product, parse_knowledge, parse_products
from engine.domain.ranking import (
    HYBRID_DEPTH,
    KNOWLEDGE_WEIGHTS,
    PRODUCT_WEIGHTS,
    candidate_signals,
    fuse,
    hybrid_rank,
    lexical_scores,
    product_rank,
    query_terms,
    term_stats,
)
from engine.domain.retrieval import Filters, ProductHit
from engine.domain.text import lexical_tokens, normalize_arabic
from engine.evaluation.retrieval import load_products
from engine.services.indexing import knowledge_index_items, product_index_items
from engine.services.ports import VectorHit
from engine.services.retrieval import (
    KNOWLEDGE_DEPTH,
    KNOWLEDGE_WINDOW_DEPTH,
    MerchantLexicon,
    Retriever,
    best_vector_per_product,
    best_window_per_chunk,
    build_lexicon,
    passes,
    product_hit,
)

DIM = 128
QUESTIONS = [
    "running shoes",
    "حذاء رياضي اسود",
    "ابغى جزمة جلد بني",
    "شنطة نسائية",
    "black bag",
    "عطر رجالي فخم",
    "how long does shipping take",
    "كم رسوم الشحن؟",
    "return policy",
    "هل يوجد دفع عند الاستلام",
    "white sneakers size 42",
    "smartwatch for swimming",
    "لابتوب للالعاب",
    "coffee",
]
FILTERS = [
    Filters(),
    Filters(max_price=300.0),
    Filters(colour="black"),
    Filters(colour="اسود"),
    Filters(size="42"),
    Filters(category="shoes"),
    Filters(min_price=100.0, exclude_skus=("KD-SHOE-001",)),
]


def _embed(texts: list[str]) -> Any:
    rows = np.full((len(texts), DIM), 0.01, dtype=np.float32)
    for r, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            rows[r, hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % DIM] += 1.0
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _search(items: list[Any], query: str, limit: int) -> list[VectorHit]:
    scores = _embed([i.text for i in items]) @ _embed([query])[0]
    order = np.argsort(-scores, kind="stable")[:limit]
    return [VectorHit(items[i].id, float(scores[i]), dict(items[i].payload)) for i in order]


def _knowledge_rows() -> list[dict[str, Any]]:
    return [
        {"doc_id": d.id, "title": d.title, "body": d.body, "language": d.language}
        for d in parse_knowledge(demo_knowledge_bytes(), DEMO_CONTENT_TYPE).rows
    ]


def _catalogues() -> list[tuple[str, list[Product]]]:
    return [
        ("demo", parse_products(demo_catalog_bytes(), DEMO_CONTENT_TYPE).rows),
        ("product_set", load_products(split=None).products[:200]),
    ]


def _setup(products: list[Product]) -> tuple[MerchantLexicon, list[Any], list[Any]]:
    rows = _knowledge_rows()
    lexicon = build_lexicon([p.to_doc("m") for p in products], rows, ("test",))
    product_items = [i for p in products for i in product_index_items(p)]
    for item in product_items:
        item.payload["text"] = item.text
    knowledge_items = [
        i
        for r in rows
        for i in knowledge_index_items(KnowledgeDoc(r["doc_id"], r["title"], r["body"]))
    ]
    return lexicon, product_items, knowledge_items


def _tokenising_products(
    query: str, hits: list[VectorHit], lexicon: MerchantLexicon, f: Filters, depth: int
) -> list[ProductHit]:
    """The ranking as it reads tokenising every candidate: the reference the new one meets."""
    dense, payloads = best_vector_per_product(hits)
    texts = {i: str(p.get("text") or "") for i, p in payloads.items()}
    bm25 = lexicon.top_products(query, depth)
    for sku in [*bm25, *dense]:
        doc = lexicon.product_docs.get(sku)
        if doc is None:
            continue
        payloads[sku] = {**payloads.get(sku, {}), **doc}
        texts[sku] = lexicon.product_texts.get(sku) or texts.get(sku, "")
    signals = candidate_signals(query, dense, bm25, texts)
    signals["stock"] = {
        i: 1.0 if payloads.get(i, {}).get("in_stock", True) else 0.0 for i in signals["cov"]
    }
    ranked = product_rank(signals, PRODUCT_WEIGHTS)
    ids = [i for i, _ in ranked if i in payloads and passes(f, payloads[i], texts.get(i, ""))]
    if not ids:
        return []
    floor = min(dense.values()) if dense else 0.0
    lexical = lexical_scores(query, [texts.get(i, "") for i in ids])
    confidence = dict(zip(ids, fuse([dense.get(i, floor) for i in ids], lexical), strict=True))
    return [
        product_hit(i, payloads[i], confidence[i], dense.get(i, 0.0), texts.get(i, "")) for i in ids
    ]


def _tokenising_knowledge(
    query: str, hits: list[VectorHit], lexicon: MerchantLexicon
) -> list[tuple[str, str, float]]:
    dense, payloads = best_window_per_chunk(hits)
    bm25 = lexicon.top_knowledge(query, KNOWLEDGE_DEPTH)
    for cid in bm25:
        payloads.setdefault(cid, lexicon.chunks[cid])
    texts = {i: f"{p.get('title') or ''}\n{p.get('body') or ''}" for i, p in payloads.items()}
    ranked = hybrid_rank(candidate_signals(query, dense, bm25, texts), KNOWLEDGE_WEIGHTS)
    ids = [i for i, _ in ranked if i in payloads]
    floor = min(dense.values()) if dense else 0.0
    lexical = lexical_scores(query, [texts.get(i, "") for i in ids])
    fused = fuse([dense.get(i, floor) for i in ids], lexical)
    return [
        (str(payloads[i].get("doc_id") or i), str(payloads[i].get("title") or ""), s)
        for i, s in zip(ids, fused, strict=True)
    ]


@pytest.mark.parametrize(("name", "products"), _catalogues())
def test_ranks_and_scores_equal_tokenising_every_candidate(
    name: str, products: list[Product]
) -> None:
    lexicon, product_items, knowledge_items = _setup(products)
    retriever = Retriever(None, None)  # type: ignore[arg-type]  # ranking only: no I/O
    compared = 0
    for query in [*QUESTIONS, *(p.title for p in products[:12])]:
        for f in FILTERS:
            depth = HYBRID_DEPTH * (3 if f.active() else 1)
            hits = _search(product_items, query, 2 * depth)
            # A deleted product's vector outlives its record until the indexer removes it.
            hits.append(VectorHit("GONE", 0.5, {"sku": "GONE", "text": f"{query} gone"}))
            got = retriever._products(query, hits, lexicon, f, depth, 10)
            expected = _tokenising_products(query, hits, lexicon, f, depth)[:10]
            assert got == expected, (name, query, f)
            compared += len(got)
        k_hits = _search(knowledge_items, query, KNOWLEDGE_WINDOW_DEPTH)
        got_k = [(k.doc_id, k.title, k.score) for k in retriever._knowledge(query, k_hits, lexicon)]
        assert got_k == _tokenising_knowledge(query, k_hits, lexicon), (name, query)
    assert compared > 100  # the filters left plenty to compare


def test_the_index_holds_the_same_term_counts_as_tokenising() -> None:
    products = load_products(split=None).products
    lexicon = build_lexicon([p.to_doc("m") for p in products], _knowledge_rows(), ("test",))
    for index, texts in (
        (lexicon.products, lexicon.product_texts),
        (lexicon.knowledge, {i: c["text"] for i, c in lexicon.chunks.items()}),
    ):
        ids = [*texts, "not-indexed"]
        for query in QUESTIONS:
            terms = query_terms(query)
            stats = index.term_stats(terms, ids)
            assert stats[-1] is None
            assert stats[:-1] == [term_stats(terms, lexical_tokens(texts[i])) for i in ids[:-1]]


def test_a_payload_text_the_lexicon_did_not_index_is_tokenised() -> None:
    products = parse_products(demo_catalog_bytes(), DEMO_CONTENT_TYPE).rows
    lexicon = build_lexicon([p.to_doc("m") for p in products], [], ("test",))
    sku = products[0].sku
    texts = {sku: "completely different words"}
    assert lexicon.product_stats(texts)(query_terms("different"), [sku]) == [None]
    assert lexicon.normalised(sku, "ÉCRU  Shoe") == normalize_arabic("ÉCRU  Shoe")
    own = lexicon.product_texts[sku]
    assert lexicon.normalised(sku, own) == normalize_arabic(own)
