"""Reply templates and policy passage selection."""

from __future__ import annotations

import re

from engine.domain.dialogue import replies
from engine.domain.dialogue.replies import best_passage, split_sentences
from engine.domain.text import detect_language

SHIPPING_EN = (
    "We deliver to every city in Saudi Arabia. Standard delivery takes 2-5 business days and "
    "costs 25 SAR. Orders of 300 SAR or more ship free.\n\n"
    "Express delivery in Riyadh arrives the next business day for 45.50 SAR. "
    "We also ship to the GCC in 5-8 business days for 60 SAR."
)
SHIPPING_AR = (
    "نوصّل لجميع مدن المملكة. التوصيل العادي يستغرق من 2 إلى 5 أيام عمل ورسومه 25 ريال. "
    "الطلبات بقيمة 300 ريال أو أكثر شحنها مجاني.\n\n"
    "التوصيل السريع في الرياض خلال يوم عمل واحد برسوم 45 ريال."
)


def test_split_sentences_keeps_decimals() -> None:
    parts = split_sentences("It costs 45.50 SAR. Really? Yes!\nNext line؟ آخر")
    assert parts == ["It costs 45.50 SAR.", "Really?", "Yes!", "Next line؟", "آخر"]


def test_best_passage_keeps_numbers_intact() -> None:
    passage = best_passage("how much is express delivery", SHIPPING_EN)
    assert "Express delivery" in passage
    assert "45.50 SAR" in passage
    assert passage in SHIPPING_EN.replace("\n\n", " ")  # verbatim quote


def test_best_passage_arabic() -> None:
    passage = best_passage("كم رسوم الشحن؟", SHIPPING_AR)
    assert "25 ريال" in passage
    passage = best_passage("التوصيل السريع", SHIPPING_AR)
    assert "45 ريال" in passage


def test_best_passage_prefers_the_specific_term() -> None:
    body = (
        "You can return any item within 14 days. Returns are refunded in 5 days. "
        "Opened perfumes cannot be returned."
    )
    assert best_passage("can I return a perfume?", body) == "Opened perfumes cannot be returned."


def test_best_passage_without_overlap_returns_the_opening() -> None:
    assert best_passage("zzz", SHIPPING_EN).startswith("We deliver to every city")


def test_best_passage_respects_max_chars_and_limits_sentences() -> None:
    passage = best_passage("delivery", SHIPPING_EN, max_chars=120)
    assert len(passage) <= 120
    assert len(split_sentences(passage)) <= 3
    long_sentence = "Shipping " + " ".join(f"{n}.5 SAR" for n in range(200))
    cut = best_passage("shipping", long_sentence, max_chars=100)
    assert len(cut) <= 100 and cut.endswith("…")
    # every number in the cut is a whole number from the source
    assert all(re.fullmatch(r"\d+\.5", n) for n in re.findall(r"\d+(?:\.\d+)?", cut))
    assert best_passage("x", "") == ""


def test_policy_answer_quotes_title_and_passage() -> None:
    text = replies.policy_answer("en", "express delivery", "Shipping & delivery", SHIPPING_EN)
    assert text.startswith("Shipping & delivery:\n")
    assert "45.50 SAR" in text
    text_ar = replies.policy_answer("ar", "التوصيل السريع", "الشحن والتوصيل", SHIPPING_AR)
    assert text_ar.startswith("الشحن والتوصيل:\n") and "45 ريال" in text_ar


def test_templates_follow_the_language() -> None:
    store = "Kaleem Demo Store"
    for lang in ("ar", "en"):
        texts = [
            replies.greeting(lang, store),
            replies.greeting(lang, store, customer_name="Sara"),
            replies.products_found(lang),
            replies.no_match(lang),
            replies.handoff(lang),
            replies.thanks(lang),
            replies.out_of_scope(lang, store),
        ]
        for text in texts:
            assert text.strip()
            assert detect_language(text) == lang, text
    assert store in replies.greeting("en", store)
    assert "Sara" in replies.greeting("en", store, customer_name="Sara")
    assert replies.products_found("en") == "Here are some products that match:"
    assert replies.products_found("ar") == "هذه بعض المنتجات المناسبة:"
    assert "couldn't find" in replies.no_match("en") and "team member" in replies.no_match("en")
    assert "team member" in replies.handoff("en")
