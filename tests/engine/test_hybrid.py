"""Hybrid ranking, constraints and follow-up intents: pure functions, no models."""

from __future__ import annotations

from engine.domain.dialogue import constraints, intents
from engine.domain.ranking import HYBRID_WEIGHTS, Bm25Index, candidate_signals, hybrid_rank, zscores
from engine.services.retrieval import Filters, passes


def test_bm25_index_finds_dialect_and_phrase_matches() -> None:
    index = Bm25Index(
        ["shoe", "bag", "abaya"],
        ["حذاء رياضي أسود للجري", "حقيبة يد جلد نسائية", "عباية سوداء كلاسيك"],
    )
    scores = index.scores("ابغى جزمة سوداء")
    assert index.ids[int(scores.argmax())] == "shoe"
    assert index.scores("شنطة")[1] > 0
    assert list(index.scores("laptop")) == [0.0, 0.0, 0.0]


def test_hybrid_rank_fuses_z_scores_and_fills_missing_signals() -> None:
    dense = {"a": 0.82, "b": 0.80, "c": 0.79}
    bm25 = {"b": 9.0, "d": 4.0}
    texts = {"a": "red shoe", "b": "black running shoe", "c": "bag", "d": "running"}
    signals = candidate_signals("black running shoe", dense, bm25, texts)
    assert set(signals["cov"]) == {"a", "b", "c", "d"}
    ranked = hybrid_rank(signals)
    assert ranked[0][0] == "b"
    assert {i for i, _ in ranked} == {"a", "b", "c", "d"}
    assert abs(sum(HYBRID_WEIGHTS.values()) - 1.0) < 1e-9
    assert list(zscores([1.0, 1.0])) == [0.0, 0.0]


def test_constraints_in_arabic_and_english() -> None:
    c = constraints.extract("أبغى جزمة سوداء أقل من ٢٠٠ ريال مقاس ٤٢")
    assert (c.max_price, c.colour, c.size, c.cheaper) == (200.0, "black", "42", False)
    assert constraints.extract("shoes over 300 SAR").min_price == 300.0
    assert constraints.extract("أرخص منه").cheaper
    assert constraints.extract("anything cheaper?").cheaper
    assert constraints.extract("cheaper than 100").max_price == 100.0
    assert constraints.colour_of("الأحمر") == "red"
    assert constraints.colour_of("red or black") is None


def test_filters_apply_price_colour_and_size() -> None:
    shoe = {"sku": "S", "price": 150.0, "attributes": {"color": "black", "sizes": [41, 42]}}
    assert passes(Filters(max_price=200, colour="black", size="42"), shoe, "Running shoe")
    assert not passes(Filters(max_price=100), shoe, "")
    assert not passes(Filters(colour="red"), shoe, "")
    assert not passes(Filters(size="44"), shoe, "")
    assert passes(Filters(colour="black"), {"sku": "T", "price": 1}, "شنطة سوداء")
    assert not passes(Filters(exclude_skus=("S",)), shoe, "")


def test_follow_up_intents_need_context() -> None:
    def ci(text: str, ctx: bool = True) -> str | None:
        return intents.commerce_intent(text, has_context=ctx, has_cart=False)

    assert ci("add it to my cart") == intents.ADD_TO_CART
    assert ci("ضيفه للسلة") == intents.ADD_TO_CART
    assert ci("add it", ctx=False) is None
    assert ci("show my cart") == intents.VIEW_CART
    assert ci("وش في السلة") == intents.VIEW_CART
    assert ci("checkout") == intents.CHECKOUT
    assert ci("ابي اطلب") == intents.CHECKOUT
    assert ci("where is my order?", ctx=False) == intents.ORDER_STATUS
    assert ci("وين طلبي") == intents.ORDER_STATUS
    assert ci("how much is the second one") == intents.PRODUCT_DETAIL
    assert ci("كم سعر الثاني") == intents.PRODUCT_DETAIL
    assert ci("I want to talk to a human") is None
    assert intents.ordinal("رقم 3") == 3
    assert intents.ordinal("the last one") == -1
