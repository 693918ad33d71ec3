"""Knowledge gaps: the questions a merchant's bot could not answer, counted per merchant.

Why: an honest "I couldn't find that" is only half the job; the merchant needs to see which
questions keep failing so they can add the policy or product. One record per merchant and
normalised question (``$inc`` on repeats), so the list stays small and sorted by demand.
Bounded: question text is cut, and the admin list is limited.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

from engine.domain.text import normalize_arabic
from engine.services.ports import Document, DocumentStore

GAPS: Final = "knowledge_gaps"
MAX_QUESTION_CHARS: Final = 300
MAX_LIST: Final = 200


def gap_id(merchant_id: str, question: str) -> str:
    norm = normalize_arabic(question)[:MAX_QUESTION_CHARS]
    return f"{merchant_id}:{hashlib.blake2b(norm.encode(), digest_size=10).hexdigest()}"


class KnowledgeGaps:
    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    async def record(
        self, merchant_id: str, question: str, *, intent: str, language: str, best_score: float
    ) -> None:
        """Idempotent per question: a replayed turn only bumps the counter again (harmless)."""
        text = " ".join(question.split())[:MAX_QUESTION_CHARS]
        if not text:
            return
        now = time.time()
        await self._store.collection(GAPS).update_one(
            {"_id": gap_id(merchant_id, text), "merchant_id": merchant_id},
            {
                "$inc": {"count": 1},
                "$set": {
                    "last_at": now,
                    "intent": intent,
                    "language": language,
                    "best_score": round(float(best_score), 4),
                },
                "$setOnInsert": {"question": text, "first_at": now},
            },
            upsert=True,
        )

    async def list(self, merchant_id: str, limit: int = 50) -> list[Document]:
        """Most asked first, then most recent."""
        docs = await self._store.collection(GAPS).find(
            {"merchant_id": merchant_id},
            sort=[("count", -1), ("last_at", -1)],
            limit=max(1, min(limit, MAX_LIST)),
        )
        return [_public(d) for d in docs]


def _public(doc: Document) -> dict[str, Any]:
    return {
        "question": doc.get("question", ""),
        "count": int(doc.get("count") or 0),
        "intent": doc.get("intent"),
        "language": doc.get("language"),
        "best_score": doc.get("best_score"),
        "first_at": doc.get("first_at"),
        "last_at": doc.get("last_at"),
    }
