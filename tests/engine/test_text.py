"""Normalisation, language detection, tokens, stemming, synonyms and price limits."""

from __future__ import annotations

import pytest

from engine.domain.text import (
    STOPWORDS,
    apply_synonyms,
    detect_language,
    extract_price_limit,
    fold_arabic,
    lexical_tokens,
    light_stem_ar,
    light_stem_en,
    normalize_arabic,
    tokenize,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("مَرْحَبًا", "مرحبا"),  # tashkeel (fatha, sukun, tanween)
        ("حِذَاءٌ", "حذاء"),  # kasra, damatan
        ("شـــنطة", "شنطه"),  # tatweel + ta marbuta
        ("أحمد إبراهيم آمنة ٱلله", "احمد ابراهيم امنه الله"),  # alef forms
        ("مستشفى", "مستشفي"),  # alef maqsura
        ("مدرسة", "مدرسه"),  # ta marbuta
        ("مؤسسة", "موسسه"),  # hamza on waw
        ("رئيس", "رييس"),  # hamza on ya
        ("٠١٢٣٤٥٦٧٨٩", "0123456789"),  # Arabic-Indic digits
        ("۰۱۲۳۴۵۶۷۸۹", "0123456789"),  # Persian digits
        ("١٢٫٥", "12.5"),  # Arabic decimal separator
        ("Red SHOES", "red shoes"),  # Latin lower-cased
        ("  a \t\n  b  ", "a b"),  # whitespace collapsed and stripped
        ("", ""),
    ],
)
def test_normalize_arabic_rules(raw: str, expected: str) -> None:
    assert normalize_arabic(raw) == expected


def test_normalize_is_idempotent() -> None:
    text = "أبغى جزمةٌ سوداءُ بأقلّ من ٢٠٠ ريال"
    assert normalize_arabic(normalize_arabic(text)) == normalize_arabic(text)


def test_fold_arabic_keeps_case_and_regex_escapes() -> None:
    assert fold_arabic(r"\W أ") == r"\W ا"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("السلام عليكم", "ar"),
        ("hello", "en"),
        ("", "en"),
        ("👍 200", "en"),
        ("ابي جوال ايفون iphone", "ar"),  # Arabic letters are the majority
        ("do you have شنطة in black?", "en"),  # Latin letters are the majority
        ("ab اب", "ar"),  # a tie goes to Arabic
        ("أبغى جزمة مقاس ٤٢", "ar"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_tokenize_drops_punctuation_and_keeps_numbers() -> None:
    assert tokenize("Hi!! do you have RED shoes, size 42? price 199.5") == [
        "hi",
        "do",
        "you",
        "have",
        "red",
        "shoes",
        "size",
        "42",
        "price",
        "199.5",
    ]
    assert tokenize("عندكم شنطة؟ بـ ١٬٢٠٠ ريال، 🙏") == ["عندكم", "شنطه", "ب", "1,200", "ريال"]


def test_tokenize_splits_scripts() -> None:
    assert tokenize("وSTC ابيiphone") == ["و", "stc", "ابي", "iphone"]


@pytest.mark.parametrize(
    ("token", "stem"),
    [
        ("الحقيبه", "حقيب"),  # ال + ه
        ("والشحن", "شحن"),  # وال
        ("بالجلد", "جلد"),  # بال
        ("كالعاده", "عاد"),  # كال + ه
        ("فالسعر", "سعر"),  # فال
        ("للرجال", "رجال"),  # لل
        ("ساعات", "ساع"),  # ات
        ("مصممون", "مصمم"),  # ون
        ("مصممين", "مصمم"),  # ين
        ("شحنها", "شحن"),  # ها
        ("رجالي", "رجال"),  # ي
        ("ورسومه", "رسوم"),  # bare و when 4+ letters remain
        ("وقت", "وقت"),  # ...but not from a short root
        ("الي", "الي"),  # never below three letters
        ("ابي", "ابي"),
    ],
)
def test_light_stem_ar(token: str, stem: str) -> None:
    assert light_stem_ar(token) == stem


@pytest.mark.parametrize(
    ("token", "stem"),
    [
        ("shoes", "shoe"),
        ("watches", "watch"),
        ("glasses", "glass"),
        ("dress", "dress"),
        ("accessories", "accessory"),
        ("shipping", "ship"),
        ("returned", "return"),
        ("selling", "sell"),
        ("bag", "bag"),
    ],
)
def test_light_stem_en(token: str, stem: str) -> None:
    assert light_stem_en(token) == stem


@pytest.mark.parametrize(
    ("gulf", "msa"),
    [
        ("أبغى", ["اريد"]),
        ("ابغي", ["اريد"]),
        ("ابي", ["اريد"]),
        ("أبي", ["اريد"]),
        ("جزمة", ["حذاء"]),
        ("جزمه", ["حذاء"]),
        ("نعال", ["حذاء", "صندل"]),
        ("شنطة", ["حقيبه"]),
        ("شنطه", ["حقيبه"]),
        ("وش", ["ماذا"]),
        ("ايش", ["ماذا"]),
        ("كم سعر", ["سعر"]),
        ("بكم", ["سعر"]),
    ],
)
def test_gulf_synonyms(gulf: str, msa: list[str]) -> None:
    assert apply_synonyms(tokenize(gulf)) == msa


def test_lexical_tokens_pipeline() -> None:
    # synonyms, then stopwords ("اريد", "من"), then stems; colours agree with the catalogue
    assert lexical_tokens("أبغى جزمة سوداء من الجلد") == ["حذاء", "اسود", "جلد"]
    assert lexical_tokens("I want the red shoes please") == ["red", "shoe"]
    assert lexical_tokens("شنطة") == lexical_tokens("الحقيبة")
    assert lexical_tokens("وش سعر الشنطة") == ["سعر", "حقيب"]


def test_stopwords_are_normalised() -> None:
    assert all(w == normalize_arabic(w) for w in STOPWORDS)
    assert "في" in STOPWORDS and "the" in STOPWORDS


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("shoes under 200", 200.0),
        ("less than 200 SAR", 200.0),
        ("below SAR 150.5", 150.5),
        ("a bag for no more than 1,299 riyals", 1299.0),
        ("perfume 300 SAR or less", 300.0),
        ("أقل من ٢٠٠ ريال", 200.0),
        ("تحت 150", 150.0),
        ("ابي عطر ارخص من ٣٠٠", 300.0),
        ("ميزانيتي 500", 500.0),
        ("جزمة بحدود ٢٥٠ ريال", 250.0),
        ("ساعة ٤٠٠ ريال او اقل", 400.0),
        ("red shoes", None),
        ("size 42", None),
        ("Nike Air Max 90", None),  # a product name, not a limit
        ("iphone 15 pro max 256", None),
        ("maximum 300", 300.0),
        ("delivery in up to 5 days", None),
        ("اقل من ٣ ايام", None),
        ("", None),
    ],
)
def test_extract_price_limit(text: str, limit: float | None) -> None:
    assert extract_price_limit(text) == limit
