"""Retrieval for one merchant: embed the question once, search products and knowledge, rerank.

Every call carries ``merchant_id`` down to the vector store, whose port makes it a required
filter, so one merchant's question can never surface another merchant's records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from engine.messages import ProductCard
from engine.ports import Candidate, Embedder, Reranker, VectorHit, VectorStore
from engine.text import expand_for_embedding

PRODUCTS = "products"
KNOWLEDGE = "knowledge"


@dataclass(frozen=True, slots=True)
class ProductHit:
    card: ProductCard
    score: float
    dense: float
    in_stock: bool
    category: str | None


@dataclass(frozen=True, slots=True)
class KnowledgeHit:
    doc_id: str
    title: str
    text: str
    score: float
    dense: float
    language: str | None = None


@dataclass(frozen=True, slots=True)
class RetrievalResult:
    products: list[ProductHit]
    knowledge: list[KnowledgeHit]
    inference_s: float = 0.0

    @property
    def best_product(self) -> float:
        return self.products[0].score if self.products else 0.0

    @property
    def best_knowledge(self) -> float:
        return self.knowledge[0].score if self.knowledge else 0.0


def _product_card(hit: VectorHit) -> ProductCard:
    p = hit.payload
    price = p.get("price")
    return ProductCard(
        sku=str(p.get("sku", hit.id)),
        title=str(p.get("title") or ""),
        price=None if price is None else float(price),
        currency=p.get("currency"),
        url=p.get("url"),
    )


class Retriever:
    def __init__(self, embedder: Embedder, vectors: VectorStore, reranker: Reranker) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._reranker = reranker

    async def retrieve(
        self,
        merchant_id: str,
        query: str,
        *,
        product_limit: int = 10,
        knowledge_limit: int = 5,
        max_price: float | None = None,
    ) -> RetrievalResult:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        vector = (await self._embedder.embed_queries([expand_for_embedding(query)]))[0].tolist()
        t_embed = loop.time() - t0
        product_hits, knowledge_hits = await asyncio.gather(
            self._vectors.search(PRODUCTS, merchant_id, vector, limit=product_limit),
            self._vectors.search(KNOWLEDGE, merchant_id, vector, limit=knowledge_limit),
        )
        if max_price is not None:
            product_hits = [
                h
                for h in product_hits
                if h.payload.get("price") is not None and float(h.payload["price"]) <= max_price
            ]
        candidates = [
            Candidate(id=f"p:{h.id}", text=str(h.payload.get("text") or ""), score=h.score)
            for h in product_hits
        ] + [
            Candidate(id=f"k:{h.id}", text=str(h.payload.get("text") or ""), score=h.score)
            for h in knowledge_hits
        ]
        if not candidates:
            return RetrievalResult([], [], t_embed)
        t1 = loop.time()
        ranked = dict(await self._reranker.rerank(query, candidates))
        inference = t_embed + (loop.time() - t1)
        products = sorted(
            (
                ProductHit(
                    card=_product_card(h),
                    score=ranked.get(f"p:{h.id}", 0.0),
                    dense=h.score,
                    in_stock=bool(h.payload.get("in_stock", True)),
                    category=h.payload.get("category"),
                )
                for h in product_hits
            ),
            key=lambda x: x.score,
            reverse=True,
        )
        knowledge = sorted(
            (
                KnowledgeHit(
                    doc_id=str(h.payload.get("doc_id") or h.id),
                    title=str(h.payload.get("title") or ""),
                    text=str(h.payload.get("body") or h.payload.get("text") or ""),
                    score=ranked.get(f"k:{h.id}", 0.0),
                    dense=h.score,
                    language=h.payload.get("language"),
                )
                for h in knowledge_hits
            ),
            key=lambda x: x.score,
            reverse=True,
        )
        return RetrievalResult(products, knowledge, inference)
