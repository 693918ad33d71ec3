"""Optional generative phrasing: a model rewords the extractive reply from the retrieved facts.

Off unless ``LLM_BASE_URL`` is set. The extractive reply (quoted policy sentences, catalogue
prices) is always built first and is what goes out whenever phrasing cannot be trusted or
afforded: the merchant's daily token budget is spent, the model is slower than
``KALEEM_LLM_TIMEOUT_MS``, it errors or answers garbage, or its text states a number, code or
policy term the facts do not (:func:`engine.domain.grounding.unsupported_claims`). A customer
therefore never waits on, or reads an invention of, the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from engine.domain.conversation import MerchantProfile
from engine.domain.grounding import unsupported_claims
from engine.services.ports import LanguageModel, LanguageModelError, TokenBudget

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 1200
MAX_COMPLETION_TOKENS = 300
MAX_FACT_CHARS = 4000

_LANGUAGES = {"ar": "Arabic (Gulf-friendly Modern Standard Arabic)", "en": "English"}


def _day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


class InProcessTokenBudget:
    """Per-process counts, bounded (LRU of ``max_keys`` merchant-days).

    Each conversation host enforces the budget for the merchants it serves; a merchant spread
    over N hosts can spend up to N budgets a day. Good enough to cap a runaway bill; a shared
    counter (Redis) is the way to an exact cap.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._max = max_keys
        self._spent: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def spent(self, merchant_id: str, day: str) -> int:
        return self._spent.get((merchant_id, day), 0)

    async def spend(self, merchant_id: str, day: str, tokens: int) -> None:
        key = (merchant_id, day)
        self._spent[key] = self._spent.get(key, 0) + max(0, tokens)
        self._spent.move_to_end(key)
        while len(self._spent) > self._max:
            self._spent.popitem(last=False)


def prompt(
    extractive: str, facts: Sequence[str], language: str, tone: str, merchant_name: str
) -> list[dict[str, str]]:
    """The chat messages: the facts are the only source, the draft is the meaning to keep."""
    facts_text = "\n".join(f"- {f}" for f in facts)[:MAX_FACT_CHARS]
    system = (
        f"You write customer-service replies for the online store {merchant_name!r}. "
        f"Reply in {_LANGUAGES.get(language, 'the customer’s language')}, tone: "
        f"{tone or 'warm, concise'}. Use ONLY the facts given. Keep every number, price and "
        "product name exactly as written. Never add a price, number, product code, discount, "
        "or any policy (free shipping, returns, refunds, warranty) that is not in the facts. "
        "At most 4 sentences. No markdown."
    )
    user = f"Facts:\n{facts_text}\n\nDraft reply to rephrase:\n{extractive}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class Phraser:
    """Rewords a reply with a :class:`LanguageModel`, or returns the extractive one unchanged."""

    def __init__(
        self,
        model: LanguageModel,
        budget: TokenBudget,
        *,
        daily_tokens: int,
        timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._model = model
        self._budget = budget
        self._daily = daily_tokens
        self._timeout = timeout_s
        self._clock = clock

    async def phrase(
        self, merchant: MerchantProfile, language: str, extractive: str, facts: Sequence[str]
    ) -> str:
        merchant_id = merchant.merchant_id
        if not extractive.strip() or not facts:
            return extractive
        day = _day(self._clock())
        if await self._budget.spent(merchant_id, day) >= self._daily:
            return extractive
        messages = prompt(extractive, facts, language, merchant.tone, merchant.name)
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._model.complete(messages, max_tokens=MAX_COMPLETION_TOKENS)
        except TimeoutError:
            log.warning("phrasing timed out", extra={"merchant": merchant_id})
            return extractive
        except LanguageModelError as exc:
            log.warning("phrasing failed: %s", exc, extra={"merchant": merchant_id})
            return extractive
        await self._budget.spend(merchant_id, day, answer.tokens)
        text = answer.text.strip()
        if not text or len(text) > MAX_REPLY_CHARS:
            return extractive
        claims = unsupported_claims(text, [*facts, extractive])
        if claims:
            log.info("phrasing rejected", extra={"merchant": merchant_id, "claims": claims[:5]})
            return extractive
        return text
