"""Knowledge is embedded per ~40-word window and scored per chunk by its best window."""

from __future__ import annotations

from engine.domain.catalog import (
    MAX_WINDOWS,
    WINDOW_WORDS,
    KnowledgeDoc,
    Product,
    chunk_knowledge,
    knowledge_vector_ids,
    text_windows,
)
from engine.services.indexing import knowledge_index_items
from engine.services.ports import VectorHit
from engine.services.retrieval import best_window_per_chunk

SENTENCE = "Returns are accepted within 14 days of delivery with the original receipt."


def test_short_text_is_one_window() -> None:
    assert text_windows(SENTENCE) == [SENTENCE]


def test_windows_pack_whole_clauses_to_the_word_budget() -> None:
    text = " ".join([SENTENCE] * 12)  # 12 x 12 words
    windows = text_windows(text)
    assert " ".join(windows) == text  # nothing lost, nothing reordered
    assert all(len(w.split()) >= WINDOW_WORDS for w in windows[:-1])
    assert all(w.endswith(".") for w in windows)  # cut at sentence ends, never mid-clause


def test_arabic_commas_are_clause_boundaries() -> None:
    clause = "يمكن إرجاع المنتج خلال ١٤ يوما من الاستلام مع الفاتورة الأصلية والتغليف"
    text = "، ".join([clause] * 8)
    windows = text_windows(text, words=20)
    assert len(windows) > 1 and all(w.endswith("،") for w in windows[:-1])


def test_windows_per_chunk_are_bounded_so_deletes_can_name_them() -> None:
    text = " ".join([SENTENCE] * 200)
    windows = text_windows(text)
    assert len(windows) == MAX_WINDOWS
    assert " ".join(windows) == text


def test_index_items_are_windows_that_carry_their_chunk() -> None:
    body = "\n\n".join([" ".join([SENTENCE] * 6)] * 3)
    doc = KnowledgeDoc("returns", "Returns policy", body, "en")
    items = knowledge_index_items(doc)
    chunks = chunk_knowledge(doc)
    assert {i.payload["chunk_id"] for i in items} == {c.id for c in chunks}
    assert len(items) > len(chunks)
    by_chunk = {c.id: c.text for c in chunks}
    for item in items:
        assert item.id.startswith(f"{item.payload['chunk_id']}.")
        assert item.text.startswith("Returns policy\n")
        assert item.payload["body"] == by_chunk[item.payload["chunk_id"]]
    assert {i.id for i in items} <= set(knowledge_vector_ids("returns", len(chunks)))
    # The legacy one-vector-per-chunk ids are removed too.
    assert "returns#0" in knowledge_vector_ids("returns", 1)


def test_a_chunk_scores_as_its_best_window() -> None:
    hits = [
        VectorHit("d#0.1", 0.91, {"chunk_id": "d#0", "body": "A"}),
        VectorHit("d#1.0", 0.80, {"chunk_id": "d#1", "body": "B"}),
        VectorHit("d#0.0", 0.70, {"chunk_id": "d#0", "body": "A"}),
        VectorHit("old#3", 0.60, {"body": "legacy"}),  # indexed before windows existed
    ]
    dense, payloads = best_window_per_chunk(hits)
    assert dense == {"d#0": 0.91, "d#1": 0.80, "old#3": 0.60}
    assert payloads["d#1"]["body"] == "B" and payloads["old#3"]["body"] == "legacy"


def test_dense_product_text_keeps_words_and_drops_number_lists() -> None:
    p = Product(
        sku="S1",
        title="Running shoes",
        description="Light and breathable.",
        price=199.0,
        currency="SAR",
        category="Shoes",
        attributes={"color": "black", "sizes": [40, 41, 42], "material": ["mesh", "rubber"]},
    )
    text = p.embedding_text()
    assert "color: black" in text and "material: mesh, rubber" in text
    assert "sizes" not in text and "40" not in text
