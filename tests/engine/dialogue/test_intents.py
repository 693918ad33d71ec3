"""The rule-based intent classifier over Arabic (MSA + Gulf) and English messages."""

from __future__ import annotations

import pytest

from engine.domain.dialogue.intents import (
    GREETING,
    HANDOFF,
    INTENTS,
    OUT_OF_SCOPE,
    POLICY_QUESTION,
    PRODUCT_SEARCH,
    THANKS,
    Intent,
    classify,
)

CASES: list[tuple[str, str]] = [
    # handoff
    ("I want a human", HANDOFF),
    ("talk to an agent please", HANDOFF),
    ("can I speak with someone from customer service?", HANDOFF),
    ("أبي أكلم موظف", HANDOFF),
    ("خدمة العملاء", HANDOFF),
    ("أريد التحدث مع شخص", HANDOFF),
    ("ابغى اكلم احد", HANDOFF),
    ("حولني على الدعم الفني", HANDOFF),
    ("I want a human about my return", HANDOFF),  # a human wins over everything
    # policy
    ("return policy?", POLICY_QUESTION),
    ("how much is shipping to Jeddah", POLICY_QUESTION),
    ("do you deliver to Dammam?", POLICY_QUESTION),
    ("كم يوم التوصيل للرياض؟", POLICY_QUESTION),
    ("ما هي سياسة الاسترجاع", POLICY_QUESTION),
    ("هل يمكن الاستبدال؟", POLICY_QUESTION),
    ("وش طرق الدفع عندكم", POLICY_QUESTION),
    ("هل عندكم الدفع عند الاستلام", POLICY_QUESTION),
    ("الشحن مجاني؟", POLICY_QUESTION),
    ("متى تفتحون؟", POLICY_QUESTION),
    ("ساعات العمل", POLICY_QUESTION),
    ("how can I track my order", POLICY_QUESTION),
    ("is there a warranty?", POLICY_QUESTION),
    ("كم يوم يوصل الطلب", POLICY_QUESTION),
    # greeting (only when it is the whole message)
    ("hi", GREETING),
    ("Hello there!", GREETING),
    ("good morning team", GREETING),
    ("السلام عليكم ورحمة الله وبركاته", GREETING),
    ("مرحبا", GREETING),
    ("هلا والله", GREETING),
    ("هلا, شلونك؟", GREETING),
    ("صباح الخير", GREETING),
    # greeting + a request = the request
    ("hi, do you have red shoes", PRODUCT_SEARCH),
    ("السلام عليكم عندكم شنط جلد؟", PRODUCT_SEARCH),
    # product search
    ("أبغى جزمة سوداء مقاس ٤٢", PRODUCT_SEARCH),
    ("ابي عطر عود", PRODUCT_SEARCH),
    ("عندكم ساعات رجالي", PRODUCT_SEARCH),
    ("black leather bag under 200", PRODUCT_SEARCH),
    ("cheapest perfume", PRODUCT_SEARCH),
    ("show me abayas", PRODUCT_SEARCH),
    ("iphone 15 case", PRODUCT_SEARCH),
    ("شاحن سريع", PRODUCT_SEARCH),
    ("نعال رجالي بأقل من ٢٠٠", PRODUCT_SEARCH),
    ("وش عندكم عبايات؟", PRODUCT_SEARCH),
    ("Nike Air Max 90", PRODUCT_SEARCH),  # unknown words: most likely a product name
    # thanks / bye
    ("thanks", THANKS),
    ("thank you so much!", THANKS),
    ("شكرا جزيلا", THANKS),
    ("مشكور ما قصرت", THANKS),
    ("مع السلامة", THANKS),
    ("bye", THANKS),
    ("يعطيك العافية", THANKS),
    ("ok", THANKS),
    # out of scope
    ("what's the weather today", OUT_OF_SCOPE),
    ("who won the match yesterday", OUT_OF_SCOPE),
    ("tell me a joke", OUT_OF_SCOPE),
    ("قول نكتة", OUT_OF_SCOPE),
    ("مين فاز في المباراة", OUT_OF_SCOPE),
    ("what do you think about the president", OUT_OF_SCOPE),
    ("كيف الطقس اليوم", OUT_OF_SCOPE),
    ("are you a bot?", OUT_OF_SCOPE),  # about the bot, not a handoff request
    ("", OUT_OF_SCOPE),
]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_classify(text: str, expected: str) -> None:
    intent = classify(text)
    assert intent.name == expected, intent
    assert intent.name in INTENTS
    assert 0.0 <= intent.confidence <= 1.0


def test_classify_is_deterministic_and_normalisation_insensitive() -> None:
    assert classify("أبغى جَزمة") == classify("ابغي جزمه")


def test_hints_let_the_caller_search_both() -> None:
    product = classify("red shoes")
    assert product.product_hint and not product.policy_hint

    policy = classify("return policy")
    assert policy.policy_hint and not policy.product_hint

    both = classify("how much is shipping for the black leather bag?")
    assert both.name == POLICY_QUESTION
    assert both.product_hint and both.policy_hint
    assert both.confidence < policy.confidence

    unknown = classify("Nike Air Max 90")
    assert unknown.product_hint and unknown.policy_hint
    assert unknown.confidence < product.confidence


def test_working_hours_are_not_watches() -> None:
    intent = classify("ساعات الدوام")
    assert intent == Intent(
        POLICY_QUESTION, intent.confidence, product_hint=False, policy_hint=True
    )
