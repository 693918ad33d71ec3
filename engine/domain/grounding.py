"""Is a generated reply grounded in the facts it was given? The check every phrased reply passes.

A language model asked to rephrase "Shipping is free over 300 SAR" may say "free over 200", name
a SKU that does not exist or promise "free returns" the policy never offered. The customer reads
it as the merchant's word, so a phrasing is used only when every price, number, SKU-like code and
policy term in it appears in the retrieved facts; anything else means the extractive reply (built
from the records alone) goes out instead. Pure: no model, no I/O; Arabic and English.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from engine.domain.text import normalize_arabic, normalize_digits

# Numbers as written: 300, 1,299.50, 2-5 (each side on its own), 14.
_NUMBER_RE: Final = re.compile(r"\d+(?:[.,]\d+)*")
# Product codes: capitals and digits joined by dashes (KD-SHOE-001, SH-01, A12-B); "2-year" is
# a number and a word, checked as such.
_CODE_RE: Final = re.compile(
    r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+\b"
)

# Terms that make a promise about money, returns, delivery or warranty. A phrasing may use one
# only when the facts do: "free", "refund" or "ضمان" out of nowhere is an invented policy.
_POLICY_TERMS_EN: Final = (
    "free",
    "refund",
    "refundable",
    "non-refundable",
    "return",
    "returns",
    "exchange",
    "exchanges",
    "warranty",
    "guarantee",
    "guaranteed",
    "cash on delivery",
    "instalment",
    "instalments",
    "installment",
    "installments",
    "express",
    "same day",
    "same-day",
    "next day",
    "discount",
    "coupon",
    "shipping",
    "delivery",
)
_POLICY_TERMS_AR: Final = (
    "مجاني",
    "مجانا",
    "مجانيه",
    "استرجاع",
    "ارجاع",
    "استرداد",
    "استبدال",
    "ضمان",
    "الدفع عند الاستلام",
    "تقسيط",
    "اقساط",
    "توصيل سريع",
    "نفس اليوم",
    "خصم",
    "كوبون",
    "شحن",
    "توصيل",
)
POLICY_TERMS: Final[tuple[str, ...]] = _POLICY_TERMS_EN + tuple(
    normalize_arabic(t) for t in _POLICY_TERMS_AR
)


def _norm(text: str) -> str:
    return normalize_arabic(normalize_digits(text)).lower()


def _numbers(text: str) -> set[str]:
    out: set[str] = set()
    for raw in _NUMBER_RE.findall(text):
        out.add(raw)
        out.add(raw.replace(",", ""))
        if raw.endswith((".0", ".00")):
            out.add(raw.split(".")[0].replace(",", ""))
    return out


def _has_term(norm_text: str, term: str) -> bool:
    """Whole-word (or whole-phrase) match; Arabic terms may carry a prefix (ال، و، ب، لل)."""
    if re.search(r"[\u0600-\u06ff]", term):
        return (
            re.search(rf"(?<![\u0600-\u06ff])(?:و|ف|ب|ل|ال|وال|بال|لل)?{term}", norm_text)
            is not None
        )
    return re.search(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])", norm_text) is not None


def unsupported_claims(text: str, facts: Sequence[str]) -> list[str]:
    """What ``text`` states that none of ``facts`` does: ``number:…``, ``code:…``, ``term:…``.

    Empty means the text is grounded. Numbers compare as digits (Arabic-Indic digits fold to
    ASCII, "1,299" matches "1299"); codes compare case-insensitively; policy terms compare on
    normalised Arabic/lower-case English.
    """
    source = _norm("\n".join(facts))
    said = _norm(text)
    claims: list[str] = []
    known_numbers = _numbers(source)
    for raw in _NUMBER_RE.findall(said):
        if raw not in known_numbers and raw.replace(",", "") not in known_numbers:
            claims.append(f"number:{raw}")
    for code in _CODE_RE.findall(normalize_digits(text)):
        if code.lower() not in source:
            claims.append(f"code:{code}")
    for term in POLICY_TERMS:
        if _has_term(said, term) and not _has_term(source, term):
            claims.append(f"term:{term}")
    return list(dict.fromkeys(claims))
