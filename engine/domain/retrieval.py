"""What retrieval answers and what a question constrains: the dialogue's view of a search.

The dialogue (``engine.domain.dialogue``) decides from these; ``services.retrieval`` produces
them from the vector store, the lexical index and the fusion weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.domain.messages import ProductCard


@dataclass(frozen=True, slots=True)
class ProductHit:
    card: ProductCard
    score: float
    dense: float
    in_stock: bool
    category: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    text: str = ""


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
        return max((p.score for p in self.products[:3]), default=0.0)

    @property
    def best_knowledge(self) -> float:
        return max((k.score for k in self.knowledge[:2]), default=0.0)


@dataclass(frozen=True, slots=True)
class Filters:
    """Hard constraints from the question (see :mod:`engine.domain.dialogue.constraints`)."""

    max_price: float | None = None
    min_price: float | None = None
    colour: str | None = None
    size: str | None = None
    category: str | None = None
    exclude_skus: tuple[str, ...] = ()

    def active(self) -> bool:
        return any(
            (
                self.max_price is not None,
                self.min_price is not None,
                self.colour,
                self.size,
                self.category,
                self.exclude_skus,
            )
        )


class RetrievalPort(Protocol):
    async def retrieve(
        self,
        merchant_id: str,
        query: str,
        *,
        product_limit: int = 10,
        knowledge_limit: int = 5,
        max_price: float | None = None,
        filters: Filters | None = None,
    ) -> RetrievalResult: ...
