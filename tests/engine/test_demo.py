"""The packaged demo store parses cleanly and is what the playground promises."""

from __future__ import annotations

import json

from engine.demo import (
    DEMO_CONTENT_TYPE,
    demo_catalog_bytes,
    demo_knowledge_bytes,
    demo_store_name,
)
from engine.domain.catalog import chunk_knowledge, parse_knowledge, parse_products
from engine.domain.dialogue.intents import POLICY_QUESTION, classify
from engine.domain.ranking import Candidate, rerank
from engine.domain.text import detect_language


def test_demo_catalog_parses_with_zero_errors() -> None:
    result = parse_products(demo_catalog_bytes(), DEMO_CONTENT_TYPE)
    assert result.errors == []
    assert 25 <= len(result.rows) <= 40
    assert len({p.sku for p in result.rows}) == len(result.rows)
    languages = {detect_language(p.title) for p in result.rows}
    assert languages == {"ar", "en"}  # a mix of Arabic- and English-titled products
    for product in result.rows:
        assert product.currency == "SAR" and product.price is not None and product.price > 0
        assert product.url == f"https://demo.kaleem.example/p/{product.sku}"
        ar, en = product.description.split("\n")
        assert detect_language(ar) == "ar" and detect_language(en) == "en"
    categories = " ".join(p.category or "" for p in result.rows).lower()
    for word in ("shoes", "sandals", "bags", "abayas", "perfumes", "watches", "phone"):
        assert word in categories


def test_demo_knowledge_has_six_policies_in_both_languages() -> None:
    result = parse_knowledge(demo_knowledge_bytes(), DEMO_CONTENT_TYPE)
    assert result.errors == []
    topics = {d.id.rsplit("-", 1)[0] for d in result.rows}
    assert topics == {"shipping", "returns", "payment", "hours", "warranty", "tracking"}
    for doc in result.rows:
        assert doc.language in ("ar", "en")
        assert detect_language(doc.body) == doc.language
        assert any(ch.isdigit() for ch in doc.body)  # concrete numbers
        assert all(len(c.text) <= 700 for c in chunk_knowledge(doc))
    bodies = {d.id: d.body for d in result.rows}
    assert "14" in bodies["returns-en"] and "14" in bodies["returns-ar"]


def test_demo_files_are_json_lines() -> None:
    for raw in (demo_catalog_bytes(), demo_knowledge_bytes()):
        for line in raw.decode("utf-8").splitlines():
            assert isinstance(json.loads(line), dict)


def test_demo_store_name() -> None:
    assert demo_store_name("ar") == "متجر كليم"
    assert demo_store_name("en") == "Kaleem Demo Store"


def test_demo_lexical_search_smoke() -> None:
    products = parse_products(demo_catalog_bytes(), DEMO_CONTENT_TYPE).rows
    candidates = [Candidate(p.sku, p.embedding_text(), 0.5) for p in products]
    assert rerank("red shoes", candidates)[0][0] == "KD-SHOE-006"
    assert rerank("أبغى جزمة سوداء", candidates)[0][0] == "KD-SHOE-004"
    assert rerank("كفر ايفون", candidates)[0][0] == "KD-PHN-001"
    assert rerank("نعال رجالي", candidates)[0][0] == "KD-SAND-001"
    assert classify("كم يوم التوصيل؟").name == POLICY_QUESTION
