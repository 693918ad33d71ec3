"""In-process CPU cost of one turn's ranking (no Ray, no model, no vector store). Prints JSON.

Times :meth:`Retriever._products` and :meth:`Retriever._knowledge` (corpus BM25, coverage,
fusion, filters, confidence) with ``time.process_time`` over a catalogue's questions. The dense
half is a deterministic stand-in (hashed bag of words over the texts the indexer embeds), so
the candidate sets are realistic in size and overlap; what is measured is the ranking alone.
``digest`` hashes every returned rank and score: two code versions rank identically exactly
when their digests agree.

    .venv/bin/python bench/ranking_cost.py [--questions 200] [--passes 3]
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt

from engine.demo import DEMO_CONTENT_TYPE, demo_catalog_bytes, demo_knowledge_bytes
from engine.domain.catalog import KnowledgeDoc, Product, parse_knowledge, parse_products
from engine.domain.ranking import HYBRID_DEPTH
from engine.domain.retrieval import Filters
from engine.evaluation.retrieval import load_products
from engine.services.indexing import knowledge_index_items, product_index_items
from engine.services.ports import VectorHit
from engine.services.retrieval import (
    KNOWLEDGE_WINDOW_DEPTH,
    MerchantLexicon,
    Retriever,
    build_lexicon,
)

DIM = 256
DEMO_QUESTIONS = [
    "running shoes",
    "حذاء رياضي",
    "ابغى جزمة جلد بني",
    "black bag under 300",
    "عطر رجالي",
    "how long does shipping take",
    "كم رسوم الشحن",
    "return policy",
    "هل يوجد دفع عند الاستلام",
    "white sneakers size 42",
]


def _embed(texts: list[str]) -> npt.NDArray[np.float32]:
    rows = np.full((len(texts), DIM), 0.01, dtype=np.float32)
    for r, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            rows[r, hashlib.blake2b(word.encode(), digest_size=2).digest()[0] % DIM] += 1.0
    out: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


class DenseStandIn:
    """Top-k cosine over hashed bags of words, with the indexer's ids and payloads."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.matrix = _embed([i.text for i in items])

    def search(self, query: str, limit: int) -> list[VectorHit]:
        scores = self.matrix @ _embed([query])[0]
        order = np.argsort(-scores, kind="stable")[:limit]
        # A payload is deserialised afresh on every search in production (an actor hop).
        return [
            VectorHit(self.items[i].id, float(scores[i]), {**self.items[i].payload, "text": "x"})
            for i in order
        ]


def _setup(
    products: list[Product], knowledge_rows: list[dict[str, Any]]
) -> tuple[MerchantLexicon, DenseStandIn, DenseStandIn]:
    lexicon = build_lexicon([p.to_doc("m") for p in products], knowledge_rows, ("bench",))
    product_items = [i for p in products for i in product_index_items(p)]
    for item in product_items:
        item.payload["text"] = item.text
    knowledge_items = []
    for row in knowledge_rows:
        kd = KnowledgeDoc(str(row["doc_id"]), str(row["title"]), str(row["body"]))
        knowledge_items += knowledge_index_items(kd)
    return lexicon, DenseStandIn(product_items), DenseStandIn(knowledge_items)


def measure(
    name: str,
    products: list[Product],
    knowledge_rows: list[dict[str, Any]],
    questions: list[str],
    passes: int,
) -> dict[str, Any]:
    lexicon, dense_products, dense_knowledge = _setup(products, knowledge_rows)
    retriever = Retriever(None, None)  # type: ignore[arg-type]  # ranking only
    turns = []
    for q in questions:
        f = Filters(max_price=300.0) if "300" in q or "تحت" in q else Filters()
        depth = HYBRID_DEPTH * (3 if f.active() else 1)
        turns.append(
            (
                q,
                f,
                depth,
                dense_products.search(q, 2 * depth),
                dense_knowledge.search(q, KNOWLEDGE_WINDOW_DEPTH),
            )
        )
    # The shown products only, where the retriever takes the limit (it builds no other hit).
    shown = [10] if "limit" in inspect.signature(Retriever._products).parameters else []
    digest = hashlib.sha256()
    per_pass = []
    for n in range(passes):
        t0 = time.process_time()
        for q, f, depth, p_hits, k_hits in turns:
            ranked = retriever._products(q, p_hits, lexicon, f, depth, *shown)
            known = retriever._knowledge(q, k_hits, lexicon)
            if n == 0:
                digest.update(repr([(h.card.sku, h.score) for h in ranked[:10]]).encode())
                digest.update(repr([(k.doc_id, k.title, k.score) for k in known]).encode())
        per_pass.append(1000 * (time.process_time() - t0) / len(turns))
    return {
        "catalogue": name,
        "products": len(products),
        "questions": len(turns),
        "ms_per_turn_first_pass": round(per_pass[0], 3),
        "ms_per_turn_later_passes": round(min(per_pass[1:] or per_pass), 3),
        "digest": digest.hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    knowledge = [
        {"doc_id": d.id, "title": d.title, "body": d.body, "language": d.language}
        for d in parse_knowledge(demo_knowledge_bytes(), DEMO_CONTENT_TYPE).rows
    ]
    demo = parse_products(demo_catalog_bytes(), DEMO_CONTENT_TYPE).rows
    product_set = load_products(split=None)
    demo_qs = (DEMO_QUESTIONS * (args.questions // len(DEMO_QUESTIONS) + 1))[: args.questions]
    out = [
        measure("demo", demo, knowledge, demo_qs, args.passes),
        measure(
            "product_set",
            product_set.products,
            knowledge,
            product_set.query_texts[: args.questions],
            args.passes,
        ),
    ]
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
