"""The output check a generated reply must pass: nothing stated that the facts do not state."""

from __future__ import annotations

from engine.domain.grounding import unsupported_claims

FACTS = [
    "Delivery inside Riyadh takes 1-2 working days and costs 15 SAR. Shipping is free for "
    "orders above 300 SAR.",
    "AirFlow Running Shoes (KD-SHOE-001) 289 SAR",
]


def test_a_faithful_rewording_passes() -> None:
    text = "Good news! Orders above 300 SAR ship free, and Riyadh gets them in 1-2 days."
    assert unsupported_claims(text, FACTS) == []


def test_an_invented_price_number_code_or_policy_is_named() -> None:
    assert unsupported_claims("Shipping is free above 200 SAR.", FACTS) == ["number:200"]
    assert "code:KD-SHOE-002" in unsupported_claims("Try KD-SHOE-002 instead.", FACTS)
    assert unsupported_claims("You also get a 2-year warranty.", FACTS) == ["term:warranty"]
    assert unsupported_claims("Returns are accepted too.", FACTS) == ["term:returns"]


def test_arabic_digits_and_terms_compare_as_the_facts_do() -> None:
    facts = ["الشحن مجاني للطلبات فوق 300 ريال. العطور لا تسترجع بعد فتحها."]
    assert unsupported_claims("الشحن مجاني فوق ٣٠٠ ريال", facts) == []
    assert unsupported_claims("ويشمل ضمان سنتين", facts) == ["term:ضمان"]
    assert unsupported_claims("الشحن مجاني فوق ٢٠٠ ريال", facts) == ["number:200"]


def test_the_facts_of_a_reply_keep_card_prices_as_written() -> None:
    from engine.domain.dialogue.turns import reply_facts
    from engine.domain.messages import ProductCard

    cards = [
        ProductCard(sku="TV-1", title="TV", price=1234567.0, currency="SAR", url=None),
        ProductCard(sku="M-1", title="Mug", price=19.5, currency="SAR", url=None),
    ]
    facts = reply_facts("Here are two", cards)
    assert facts == ["Here are two", "TV (TV-1) 1234567 SAR", "Mug (M-1) 19.5 SAR"]
    assert unsupported_claims("The TV (TV-1) is 1234567 SAR, the mug 19.5 SAR.", facts) == []
