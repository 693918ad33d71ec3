"""Reply texts in Arabic and English.

Templates, not generation: every sentence the bot can say is reviewable here, answers to
policy questions quote the merchant's own words (so prices, fees and day counts are never
paraphrased wrongly), and the bot never claims to have found something it has not.
Replies follow the customer's language (``engine.text.detect_language``).
"""

from __future__ import annotations

import math
import re
from typing import Final

from engine.text import Language, lexical_tokens

# --- passage selection ------------------------------------------------------------------------

# Sentence ends: . ! ? ؟ and newlines, but a dot must be followed by whitespace so decimal
# numbers ("12.5 SAR") and abbreviations inside words are never split.
_SENTENCE_SPLIT_RE: Final = re.compile(r"(?<=[.!?؟؛])\s+|\s*\n+\s*")
_MAX_SENTENCES: Final = 3
# A lone sentence shorter than this ("Yes, we do.") reads as a non-answer: add the next one.
_MIN_CONTEXT_CHARS: Final = 60


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences without breaking numbers like ``12.5`` or ``1,500``."""
    return [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s and s.strip()]


def _truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary (a number is one word, so it is never cut in half)."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,،;؛:") + "…"


def best_passage(query: str, body: str, max_chars: int = 600) -> str:
    """The 1-3 consecutive sentences of ``body`` that best answer ``query``.

    Scores each sentence by the IDF-weighted distinct query terms (normalised, stemmed,
    synonyms applied) it contains, anchors on the best one and extends with following/preceding
    sentences while they also match and fit in ``max_chars``. When nothing overlaps
    (e.g. the match came from dense retrieval on a paraphrase), the opening sentences are
    returned: merchants put the gist of a policy first. Sentences are quoted verbatim.
    """
    sentences = split_sentences(body)
    if not sentences:
        return ""
    q_terms = set(lexical_tokens(query))
    sentence_terms = [set(lexical_tokens(s)) for s in sentences]
    # IDF over the body's sentences: in "can I return perfume?" against a returns policy,
    # "return" is everywhere and "perfume" picks the one sentence about perfumes.
    n = len(sentences)
    weight = {t: math.log(1.0 + n / (1 + sum(t in st for st in sentence_terms))) for t in q_terms}
    overlaps = [sum(weight[t] for t in q_terms & st) for st in sentence_terms]
    best = max(range(len(sentences)), key=lambda i: (overlaps[i], -i))
    if overlaps[best] == 0:
        best = 0

    chosen = [best]
    covered = q_terms & sentence_terms[best]
    length = len(sentences[best])
    lo, hi = best, best
    while len(chosen) < _MAX_SENTENCES:
        options = [i for i in (hi + 1, lo - 1) if 0 <= i < len(sentences)]
        if not options:
            break
        # A neighbour earns its place by covering query terms the answer lacks so far (the
        # following sentence wins ties: it usually carries the detail). Otherwise keep adding
        # following sentences only while the answer is too short to stand alone, or when
        # nothing matched at all (then the opening of the policy is the answer).
        gains = {
            i: sum(weight[t] for t in (q_terms & sentence_terms[i]) - covered) for i in options
        }
        nxt = max(options, key=lambda i: gains[i])
        if gains[nxt] == 0:
            if not (overlaps[best] == 0 or length < _MIN_CONTEXT_CHARS) or hi + 1 >= len(sentences):
                break
            nxt = hi + 1
        if length + 1 + len(sentences[nxt]) > max_chars:
            break
        chosen.append(nxt)
        covered |= q_terms & sentence_terms[nxt]
        length += 1 + len(sentences[nxt])
        lo, hi = min(lo, nxt), max(hi, nxt)
    return _truncate(" ".join(sentences[i] for i in sorted(chosen)), max_chars)


# --- reply templates --------------------------------------------------------------------------


def greeting(language: Language, store_name: str, customer_name: str | None = None) -> str:
    """Welcome the customer and say what the bot can do, so the next message is useful."""
    if language == "ar":
        hello = f"أهلاً {customer_name}!" if customer_name else "أهلاً وسهلاً!"
        return (
            f"{hello} معك مساعد {store_name}. "
            "اكتب لي وش تدوّر عليه وأساعدك تلقاه، أو اسألني عن الشحن والاسترجاع والدفع."
        )
    hello = f"Hi {customer_name}!" if customer_name else "Hi there!"
    return (
        f"{hello} Welcome to {store_name}. Tell me what you're looking for and I'll find it, "
        "or ask me about shipping, returns and payment."
    )


def products_found(language: Language) -> str:
    """Intro line only: the connector renders the product cards in the channel's own format."""
    if language == "ar":
        return "هذه بعض المنتجات المناسبة:"
    return "Here are some products that match:"


def policy_answer(
    language: Language, query: str, title: str, body: str, max_chars: int = 600
) -> str:
    """Quote the merchant's policy: the title, then the best sentences of the passage.

    ``language`` picks the framing line; the quote stays in the words the merchant wrote.
    """
    passage = best_passage(query, body, max_chars=max_chars)
    if language == "ar":
        return f"{title}:\n{passage}\n\nهل تحتاج أي مساعدة ثانية؟"
    return f"{title}:\n{passage}\n\nAnything else I can help with?"


def no_match(language: Language) -> str:
    """Say honestly that nothing matched and offer a person, instead of guessing."""
    if language == "ar":
        return (
            "للأسف ما لقيت هذا في متجرنا. تقدر توصفه بكلمات ثانية، "
            "أو إذا تحب أحوّلك لأحد من فريقنا يساعدك؟"
        )
    return (
        "Sorry, I couldn't find that in our store. You can try describing it differently, "
        "or I can connect you with a team member. Would you like that?"
    )


def handoff(language: Language) -> str:
    """Acknowledge the handoff; a human takes over the conversation from here."""
    if language == "ar":
        return "أكيد، جاري تحويلك لأحد أعضاء فريقنا، وبيرد عليك في أقرب وقت."
    return "Sure, I'm connecting you with a team member. They'll reply here shortly."


def thanks(language: Language) -> str:
    """Close politely but leave the door open (thank-yous often precede a new question)."""
    if language == "ar":
        return "العفو! سعيدين بخدمتك، وإذا احتجت أي شيء ثاني أنا هنا."
    return "You're welcome! Happy to help. If you need anything else, I'm here."


def out_of_scope(language: Language, store_name: str) -> str:
    """Decline politely and steer back to what the store's assistant can actually do."""
    if language == "ar":
        return (
            f"أنا مساعد {store_name} وأقدر أساعدك في المنتجات والطلبات وسياسات المتجر "
            "مثل الشحن والاسترجاع. وش تدوّر عليه اليوم؟"
        )
    return (
        f"I'm the {store_name} assistant, so I can help with our products, orders and store "
        "policies like shipping and returns. What are you looking for today?"
    )


def technical_fallback(language: Language) -> str:
    """When the pipeline keeps failing: apologise and bring in a person, never stay silent."""
    if language == "ar":
        return "عذرًا، واجهتنا مشكلة تقنية. حوّلت رسالتك لأحد أعضاء فريقنا وبيرد عليك قريبًا."
    return (
        "Sorry, we hit a technical problem. I've passed your message to a team member, "
        "who will reply here shortly."
    )
