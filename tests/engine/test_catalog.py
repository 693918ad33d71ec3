"""Catalogue and knowledge import parsing, and knowledge chunking."""

from __future__ import annotations

import json

import pytest

from engine.domain.catalog import (
    ImportFormatError,
    KnowledgeDoc,
    Product,
    RowError,
    UnsupportedContentType,
    chunk_knowledge,
    parse_knowledge,
    parse_products,
    product_from_mapping,
)


def _jsonl(*rows: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


GOOD = {
    "sku": "KD-1",
    "title": "Red Canvas Sneakers",
    "description": "Casual red sneakers",
    "price": 179,
    "currency": "sar",
    "category": "Shoes",
    "url": "https://demo.kaleem.example/p/KD-1",
    "image_url": "http://demo.kaleem.example/img/KD-1.jpg",
    "in_stock": True,
    "attributes": {"color": "red", "sizes": [40, 41]},
}


def test_jsonl_good_row() -> None:
    result = parse_products(_jsonl(GOOD), "application/x-ndjson")
    assert result.errors == []
    [product] = result.rows
    assert product == Product(
        sku="KD-1",
        title="Red Canvas Sneakers",
        description="Casual red sneakers",
        price=179.0,
        currency="SAR",
        category="Shoes",
        url="https://demo.kaleem.example/p/KD-1",
        image_url="http://demo.kaleem.example/img/KD-1.jpg",
        in_stock=True,
        attributes={"color": "red", "sizes": [40, 41]},
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-ndjson",
        "application/jsonl",
        "application/json",
        "application/json; charset=utf-8",
    ],
)
def test_jsonl_content_types(content_type: str) -> None:
    assert len(parse_products(_jsonl(GOOD), content_type).rows) == 1


def test_json_array_is_accepted_for_application_json() -> None:
    data = json.dumps([GOOD, {"sku": "x"}]).encode()
    result = parse_products(data, "application/json")
    assert [p.sku for p in result.rows] == ["KD-1"]
    assert result.errors == [RowError(2, "title is required")]


def test_jsonl_bad_rows_report_line_numbers_and_good_rows_land() -> None:
    data = _jsonl(
        GOOD,  # 1
        {"title": "no sku"},  # 2
        "",  # 3 blank: skipped silently
        "{not json",  # 4
        {**GOOD, "sku": "KD-2", "url": "javascript:alert(1)"},  # 5
        {**GOOD, "sku": "KD-3", "image_url": "ftp://x/y.jpg"},  # 6
        {**GOOD, "sku": "KD-4", "price": -1},  # 7
        {**GOOD, "sku": "KD-5", "currency": "riyal"},  # 8
        {**GOOD, "sku": "K" * 129},  # 9
        "[1, 2]",  # 10
        {**GOOD, "sku": "KD-6", "price": "١٬٢٩٩٫٥٠"},  # 11: Arabic digits and separators
        {**GOOD, "sku": "KD-7", "attributes": [1]},  # 12
        {**GOOD, "sku": "KD-8", "in_stock": "maybe"},  # 13
        {**GOOD, "sku": "KD-9", "price": "12abc"},  # 14
    )
    result = parse_products(data, "application/x-ndjson")
    assert [p.sku for p in result.rows] == ["KD-1", "KD-6"]
    assert result.rows[1].price == 1299.5
    assert [e.line for e in result.errors] == [2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]
    messages = {e.line: e.message for e in result.errors}
    assert "sku" in messages[2]
    assert "invalid JSON" in messages[4]
    assert "url" in messages[5] and "image_url" in messages[6]
    assert "price" in messages[7] and "currency" in messages[8]
    assert "128" in messages[9]


def test_duplicate_sku_last_wins_silently() -> None:
    data = _jsonl(GOOD, {**GOOD, "title": "Second"}, {**GOOD, "sku": "other"})
    result = parse_products(data, "application/x-ndjson")
    assert result.errors == []
    assert {p.sku: p.title for p in result.rows} == {"KD-1": "Second", "other": GOOD["title"]}


CSV_TEXT = (
    "sku,title,description,price,currency,category,url,image_url,in_stock,attributes,color\n"
    'A1,حذاء جلد,"وصف, مع فاصلة",٢٥٠,sar,Shoes,https://s.example/p/A1,,yes,"{""size"": 42}",brown\n'
    "A2,,no title,10,SAR,,,,true,,\n"
    'A3,Bag,"multi\nline description",99.5,SAR,Bags,not-a-url,,1,,\n'
    "A4,Watch,,1000,SAR,,,,no,,\n"
    "\n"
    "A5,Case,,abc,SAR,,,,0,,\n"
    "A6,Wallet,,50,SAR,,,,false,{bad json,\n"
)


def test_csv_with_header_line_numbers_and_extra_columns() -> None:
    result = parse_products(CSV_TEXT.encode(), "text/csv")
    assert [p.sku for p in result.rows] == ["A1", "A4"]
    a1, a4 = result.rows
    assert a1.title == "حذاء جلد" and a1.description == "وصف, مع فاصلة"
    assert a1.price == 250.0 and a1.currency == "SAR" and a1.in_stock is True
    assert a1.attributes == {"color": "brown", "size": 42}  # extra column folded in
    assert a4.in_stock is False and a4.description == ""
    # header is line 1; A3's quoted field spans lines 4-5; blank line 7 is skipped
    assert [(e.line, e.message.split()[0]) for e in result.errors] == [
        (3, "title"),
        (4, "url"),
        (8, "price"),
        (9, "attributes"),
    ]


def test_csv_with_bom_and_crlf() -> None:
    data = "\ufeffsku,title,price\r\nB1,Bag,99\r\n".encode()
    result = parse_products(data, "text/csv; charset=utf-8")
    assert result.errors == []
    assert result.rows[0].sku == "B1" and result.rows[0].price == 99.0


def test_jsonl_with_bom() -> None:
    data = b"\xef\xbb\xbf" + _jsonl(GOOD)
    assert parse_products(data, "application/x-ndjson").rows[0].sku == "KD-1"


def test_file_level_errors() -> None:
    with pytest.raises(UnsupportedContentType):
        parse_products(b"x", "application/xml")
    with pytest.raises(ImportFormatError):
        parse_products(b"\xff\xfe bad", "text/csv")
    with pytest.raises(ImportFormatError, match="title"):
        parse_products(b"sku,name\nA,B\n", "text/csv")
    with pytest.raises(ImportFormatError):
        parse_products(b"", "text/csv")
    assert parse_products(b"", "application/x-ndjson").rows == []


def test_max_rows_is_bounded() -> None:
    data = _jsonl(*({**GOOD, "sku": f"S{i}"} for i in range(5)))
    result = parse_products(data, "application/x-ndjson", max_rows=3)
    assert len(result.rows) == 3
    assert result.errors[0].line == 4 and "limit" in result.errors[0].message


def test_product_doc_card_and_embedding_text() -> None:
    product = product_from_mapping({**GOOD, "description": "word " * 200})
    doc = product.to_doc("m1")
    assert doc["_id"] == "m1:KD-1" and doc["merchant_id"] == "m1"
    assert Product.from_doc(doc) == product
    card = product.to_card()
    assert (card.sku, card.price, card.currency) == ("KD-1", 179.0, "SAR")
    text = product.embedding_text()
    assert text.startswith("Red Canvas Sneakers\n") and "Shoes" not in text  # BM25 reads it
    assert "color: red" in text and "sizes" not in text  # numeric sizes are filters, not meaning
    assert len(text) < 400 + 100
    with pytest.raises(ValueError, match="sku"):
        product_from_mapping({"title": "x"})


KNOWLEDGE_CSV = "id,title,body,language\nship,Shipping,We ship in 3 days.,EN\nbad,,x,\n"


def test_parse_knowledge_jsonl_and_csv() -> None:
    data = _jsonl(
        {"id": "returns", "title": "Returns", "body": "14 days.", "language": "en"},
        {"id": "x", "title": "No body"},
    )
    result = parse_knowledge(data, "application/jsonl")
    assert result.rows == [KnowledgeDoc("returns", "Returns", "14 days.", "en")]
    assert result.errors == [RowError(2, "body is required")]

    result = parse_knowledge(KNOWLEDGE_CSV.encode(), "text/csv")
    assert result.rows == [KnowledgeDoc("ship", "Shipping", "We ship in 3 days.", "en")]
    assert [e.line for e in result.errors] == [3]
    assert result.rows[0].to_doc("m1")["_id"] == "m1:ship"


def test_chunk_knowledge_short_doc_is_one_chunk() -> None:
    doc = KnowledgeDoc("ship", "Shipping", "Para one.\n\nPara two.")
    [chunk] = chunk_knowledge(doc)
    assert chunk.id == "ship#0" and chunk.doc_id == "ship" and chunk.title == "Shipping"
    assert chunk.text == "Para one.\n\nPara two."
    assert chunk.embedding_text() == "Shipping\nPara one.\n\nPara two."


def test_chunk_knowledge_splits_on_paragraphs_then_sentences() -> None:
    para = " ".join(f"Sentence number {i} costs {i}.5 SAR." for i in range(30))
    body = "Intro paragraph.\n\n" + para + "\n\n" + "Tail paragraph."
    doc = KnowledgeDoc("long", "Long", body)
    chunks = chunk_knowledge(doc, max_chars=200)
    assert len(chunks) > 3
    assert all(len(c.text) <= 200 for c in chunks)
    assert [c.id for c in chunks] == [f"long#{i}" for i in range(len(chunks))]
    joined = " ".join(c.text for c in chunks)
    for i in range(30):  # no sentence (and no number) is cut
        assert f"Sentence number {i} costs {i}.5 SAR." in joined
    assert chunks == chunk_knowledge(doc, max_chars=200)  # deterministic ids and texts


def test_chunk_knowledge_hard_splits_a_giant_sentence() -> None:
    doc = KnowledgeDoc("t", "T", "word " * 500)
    chunks = chunk_knowledge(doc, max_chars=100)
    assert all(0 < len(c.text) <= 100 for c in chunks)
    with pytest.raises(ValueError):
        chunk_knowledge(doc, max_chars=10)
