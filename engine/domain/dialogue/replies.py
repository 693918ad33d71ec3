"""Reply texts in Arabic and English.

Templates, not generation: every sentence the bot can say is reviewable here, answers to
policy questions quote the merchant's own words (so prices, fees and day counts are never
paraphrased wrongly), and the bot never claims to have found something it has not.
Replies follow the customer's language (``engine.domain.text.detect_language``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final

from engine.domain.text import Language, lexical_tokens


def bilingual(*, ar: str, en: str) -> Callable[[Language], str]:
    """A fixed reply in both languages, picked by the customer's language."""

    def reply(language: Language) -> str:
        return ar if language == "ar" else en

    return reply


# --- passage selection ------------------------------------------------------------------------

# Sentence ends: . ! ? ؟ and newlines, but a dot must be followed by whitespace so decimal
# numbers ("12.5 SAR") and abbreviations inside words are never split.
_SENTENCE_SPLIT_RE: Final = re.compile(r"(?<=[.!?؟؛])\s+|\s*\n+\s*")
_MAX_SENTENCES: Final = 3
# A lone sentence shorter than this ("Yes, we do.") reads as a non-answer: add the next one.
_MIN_CONTEXT_CHARS: Final = 60
WHOLE_PASSAGE_CHARS: Final = 420


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


# Intro line only: the connector renders the product cards in the channel's own format.
products_found = bilingual(
    ar="هذه بعض المنتجات المناسبة:",
    en="Here are some products that match:",
)


def policy_answer(
    language: Language, query: str, title: str, body: str, max_chars: int = 600
) -> str:
    """Quote the merchant's policy: the title, then the best sentences of the passage.

    ``language`` picks the framing line; the quote stays in the words the merchant wrote.
    A short passage is quoted whole: a fee question is often answered by two sentences that
    share no words with it ("Other cities ... 25 SAR"), and cutting them loses the numbers.
    """
    text = " ".join(body.split())
    if len(text) <= WHOLE_PASSAGE_CHARS:
        passage = text
    else:
        passage = best_passage(query, body, max_chars=max_chars)
    if language == "ar":
        return f"{title}:\n{passage}\n\nهل تحتاج أي مساعدة ثانية؟"
    return f"{title}:\n{passage}\n\nAnything else I can help with?"


# Say honestly that nothing matched and offer a person, instead of guessing.
no_match = bilingual(
    ar="للأسف ما لقيت هذا في متجرنا. تقدر توصفه بكلمات ثانية، "
    "أو إذا تحب أحوّلك لأحد من فريقنا يساعدك؟",
    en="Sorry, I couldn't find that in our store. You can try describing it differently, "
    "or I can connect you with a team member. Would you like that?",
)


# Acknowledge the handoff; a human takes over the conversation from here.
handoff = bilingual(
    ar="أكيد، جاري تحويلك لأحد أعضاء فريقنا، وبيرد عليك في أقرب وقت.",
    en="Sure, I'm connecting you with a team member. They'll reply here shortly.",
)


# Close politely but leave the door open (thank-yous often precede a new question).
thanks = bilingual(
    ar="العفو! سعيدين بخدمتك، وإذا احتجت أي شيء ثاني أنا هنا.",
    en="You're welcome! Happy to help. If you need anything else, I'm here.",
)


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


# When the pipeline keeps failing: apologise and bring in a person, never stay silent.
technical_fallback = bilingual(
    ar="عذرًا، واجهتنا مشكلة تقنية. حوّلت رسالتك لأحد أعضاء فريقنا وبيرد عليك قريبًا.",
    en="Sorry, we hit a technical problem. I've passed your message to a team member, "
    "who will reply here shortly.",
)


# --- commerce and follow-ups --------------------------------------------------------------------
# Prices in these replies always come from catalogue records passed in by the caller (never
# from the customer's text), formatted without rounding surprises.


def money(amount: float | None, currency: str | None, language: Language) -> str:
    if amount is None:
        return "السعر غير متوفر" if language == "ar" else "price not listed"
    value = f"{amount:,.2f}".rstrip("0").rstrip(".")
    cur = currency or ""
    if language == "ar" and cur.upper() == "SAR":
        cur = "ريال"
    return f"{value} {cur}".strip()


def product_detail(
    language: Language, title: str, price: float | None, currency: str | None, in_stock: bool
) -> str:
    stock_ar = "متوفر" if in_stock else "غير متوفر حالياً"
    stock_en = "in stock" if in_stock else "currently out of stock"
    if language == "ar":
        return f"{title}: سعره {money(price, currency, language)} ({stock_ar}). تبي أضيفه للسلة؟"
    return f"{title}: {money(price, currency, language)} ({stock_en}). Shall I add it to your cart?"


cheaper_found = bilingual(
    ar="هذه خيارات أرخص:",
    en="Here are cheaper options:",
)


nothing_cheaper = bilingual(
    ar="ما لقيت خيار أرخص من هذا في متجرنا. تحب أحوّلك لأحد من فريقنا؟",
    en="I couldn't find a cheaper option in our store. Would you like me to ask a team member?",
)


def clarify(language: Language, options: list[str]) -> str:
    """A short question instead of a guess when matches are close to but under the bar."""
    shown = " / ".join(options[:2])
    if language == "ar":
        return f"تقصد {shown}؟ وضّح لي أكثر (النوع، اللون، الميزانية) وأساعدك."
    return f"Do you mean {shown}? Tell me a bit more (type, colour, budget) and I'll find it."


which_product = bilingual(
    ar="أي منتج تقصد؟ اكتب اسمه أو رقمه من القائمة.",
    en="Which product do you mean? Tell me its name or its number in the list.",
)


def added_to_cart(
    language: Language, title: str, qty: int, count: int, total: float, currency: str | None
) -> str:
    if language == "ar":
        return (
            f"تمت إضافة {title} (×{qty}) للسلة. في سلتك {count} منتج، "
            f"الإجمالي {money(total, currency, language)}. تبي تكمل الطلب؟"
        )
    return (
        f"Added {title} (×{qty}) to your cart. You have {count} item(s), total "
        f"{money(total, currency, language)}. Would you like to check out?"
    )


def cart_view(
    language: Language, lines: list[tuple[str, int, float]], total: float, currency: str | None
) -> str:
    if not lines:
        if language == "ar":
            return "سلتك فاضية. وش تدوّر عليه؟"
        return "Your cart is empty. What are you looking for?"
    rows = "\n".join(
        f"- {title} ×{qty}: {money(amount, currency, language)}" for title, qty, amount in lines
    )
    if language == "ar":
        return f"سلتك:\n{rows}\nالإجمالي: {money(total, currency, language)}. تبي تكمل الطلب؟"
    return f"Your cart:\n{rows}\nTotal: {money(total, currency, language)}. Ready to check out?"


def ask_field(language: Language, name: str) -> str:
    ar = {
        "name": "تمام! عشان نكمل الطلب، وش اسمك الكريم؟",
        "phone": "وش رقم جوالك؟ (مثال: 0551234567)",
        "city": "في أي مدينة التوصيل؟",
    }
    en = {
        "name": "Great! To place your order, what's your name?",
        "phone": "What's your phone number? (e.g. 0551234567)",
        "city": "Which city should we deliver to?",
    }
    return (ar if language == "ar" else en)[name]


bad_phone = bilingual(
    ar="الرقم ما يبدو صحيح. اكتب رقم الجوال بالأرقام فقط (مثال: 0551234567).",
    en="That phone number doesn't look right. Please send digits only (e.g. 0551234567).",
)


def order_created(
    language: Language, order_id: str, total: float, currency: str | None, name: str, city: str
) -> str:
    if language == "ar":
        return (
            f"تم تسجيل طلبك يا {name}! رقم الطلب: {order_id}. "
            f"الإجمالي {money(total, currency, language)}، والتوصيل إلى {city}. "
            "بيتواصل معك فريقنا لتأكيد الدفع والتوصيل."
        )
    return (
        f"Thanks {name}, your order is placed! Order number: {order_id}. "
        f"Total {money(total, currency, language)}, delivering to {city}. "
        "Our team will contact you to confirm payment and delivery."
    )


def order_pay_link(
    language: Language, order_id: str, total: float, currency: str | None, name: str, url: str
) -> str:
    if language == "ar":
        return (
            f"تم تسجيل طلبك يا {name}! رقم الطلب: {order_id}. "
            f"الإجمالي {money(total, currency, language)}. ادفع من هنا لتأكيد الطلب: {url}"
        )
    return (
        f"Thanks {name}, your order is placed! Order number: {order_id}. "
        f"Total {money(total, currency, language)}. Pay here to confirm it: {url}"
    )


order_failed = bilingual(
    ar="ما قدرت أسجل الطلب لأن أحد المنتجات غير متوفر الآن. أحوّلك لأحد من فريقنا؟",
    en="I couldn't place the order because an item is no longer available. "
    "Shall I connect you with a team member?",
)


checkout_empty = bilingual(
    ar="سلتك فاضية. قول لي وش تبي تطلب وأضيفه لك.",
    en="Your cart is empty. Tell me what you'd like to order and I'll add it.",
)


checkout_cancelled = bilingual(
    ar="تم إلغاء إتمام الطلب، وسلتك محفوظة. أقدر أساعدك بشي ثاني؟",
    en="Checkout cancelled; your cart is kept. Anything else I can help with?",
)


def order_status(
    language: Language, order_id: str, status: str, total: float, cur: str | None
) -> str:
    ar_status = {
        "new": "جديد، قيد المراجعة",
        "confirmed": "مؤكد",
        "shipped": "تم الشحن",
        "delivered": "تم التوصيل",
        "cancelled": "ملغي",
    }
    if language == "ar":
        return (
            f"طلبك رقم {order_id}: الحالة {ar_status.get(status, status)}، "
            f"الإجمالي {money(total, cur, language)}."
        )
    return f"Your order {order_id} is {status}; total {money(total, cur, language)}."


# A phone alone does not open an order: ask for the number the confirmation gave.
order_lookup = bilingual(
    ar="عشان نحافظ على خصوصيتك: أرسل رقم الطلب (يبدأ بـ ord_) مع رقم الجوال المسجل عليه، "
    "أو أحوّلك لأحد من فريقنا.",
    en="To keep your details private, send the order number (it starts with ord_) together "
    "with the phone number on the order, or I can pass you to a team member.",
)
