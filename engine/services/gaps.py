"""Knowledge gaps: the questions a merchant's bot could not answer, counted per merchant.

Why: an honest "I couldn't find that" is only half the job; the merchant needs to see which
questions keep failing so they can add the policy or product. One record per merchant and
normalised question (a counter bumped on repeats), so the list stays small and sorted by demand.
Bounded: question text is cut, and the admin list is limited.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final

from engine.domain.text import normalize_arabic
from engine.services.ports import Document
from engine.services.repositories import Repositories

MAX_QUESTION_CHARS: Final = 300
MAX_LIST: Final = 200


def gap_id(merchant_id: str, question: str) -> str:
    norm = normalize_arabic(question)[:MAX_QUESTION_CHARS]
    return f"{merchant_id}:{hashlib.blake2b(norm.encode(), digest_size=10).hexdigest()}"


class KnowledgeGaps:
    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    async def record(
        self, merchant_id: str, question: str, *, intent: str, language: str, best_score: float
    ) -> None:
        """Idempotent per question: a replayed turn only bumps the counter again (harmless)."""
        text = " ".join(question.split())[:MAX_QUESTION_CHARS]
        if not text:
            return
        facts = {"intent": intent, "language": language, "best_score": round(float(best_score), 4)}
        await self._repos.gaps.bump(
            merchant_id, gap_id(merchant_id, text), text, facts, time.time()
        )

    async def list(self, merchant_id: str, limit: int = 50) -> list[Document]:
        """Most asked first, then most recent."""
        docs = await self._repos.gaps.top(merchant_id, limit=max(1, min(limit, MAX_LIST)))
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
