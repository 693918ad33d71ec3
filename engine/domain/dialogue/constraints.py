"""Hard constraints in a shopping question: price bounds, colour, size, "cheaper".

Why rules: a customer who says "under 200 riyals" or "أقل من ٢٠٠ ريال" must never be shown a
250-riyal product, however similar its vector; retrieval turns these into filters
(:class:`engine.services.retrieval.Filters`), not into soft scores. Pure and table-driven, on the
normalised text (so Arabic-Indic digits, hamza forms and tatweel do not matter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.domain.text import extract_price_limit, fold_arabic, normalize_arabic

# Canonical colour (as merchants tend to store it in attributes) -> the words customers use.
_COLOUR_SOURCE: Final[dict[str, str]] = {
    "black": "black أسود سوداء اسود سود",
    "white": "white أبيض بيضاء ابيض بيض",
    "red": "red أحمر حمراء احمر حمر",
    "blue": "blue navy أزرق زرقاء ازرق كحلي",
    "green": "green أخضر خضراء اخضر",
    "brown": "brown بني بنية",
    "pink": "pink وردي وردية زهري",
    "gold": "gold golden ذهبي ذهبية",
    "silver": "silver فضي فضية",
    "beige": "beige بيج",
    "grey": "grey gray رمادي رمادية",
    "yellow": "yellow أصفر صفراء اصفر",
    "purple": "purple بنفسجي موف",
    "orange": "orange برتقالي",
}
COLOURS: Final[dict[str, tuple[str, ...]]] = {
    k: tuple(dict.fromkeys(normalize_arabic(v).split())) for k, v in _COLOUR_SOURCE.items()
}
_WORD_TO_COLOUR: Final[dict[str, str]] = {w: k for k, ws in COLOURS.items() for w in ws}
# "الأسود", "بالأحمر": the article/preposition glued to a colour word.
_COLOUR_PREFIX_RE: Final = re.compile("^(?:وال|بال|فال|ال|لل)")

_SIZE_RES: Final = (
    re.compile(
        r"(?:size|sz|مقاس|قياس|مقاسي|نمره|نمرة|رقم)\s*[:#]?\s*(\d{1,3}(?:\.5)?|x{0,3}[sml]|xxl)\b"
    ),
)
_MIN_PRICE_RE: Final = re.compile(
    fold_arabic(
        r"(?:over|above|more than|at least|اكثر من|أكثر من|فوق)\s*(\d{1,12}(?:\.\d{1,4})?)"
        r"\s*(?:sar|sr|riyals?|ريال|ر\.?س)"
    )
)
_CHEAPER_RE: Final = re.compile(
    fold_arabic(
        r"\b(?:cheaper|cheapest|less expensive|lower price|more affordable|budget)\b|"
        r"(?:^|\s)(?:ارخص|أرخص|الارخص|الأرخص|ارخص منه|أرخص منها|اقل سعر|أقل سعر|ارخيص)"
    )
)


@dataclass(frozen=True, slots=True)
class Constraints:
    max_price: float | None = None
    min_price: float | None = None
    colour: str | None = None
    size: str | None = None
    cheaper: bool = False

    def any(self) -> bool:
        return any(
            (
                self.max_price is not None,
                self.min_price is not None,
                self.colour,
                self.size,
                self.cheaper,
            )
        )


def colour_of(text: str) -> str | None:
    """The canonical colour a message asks for ("the red one", "الأحمر"), if exactly one."""
    found: list[str] = []
    for token in normalize_arabic(text).replace("-", " ").split():
        token = token.strip(".,!?؟،")
        colour = _WORD_TO_COLOUR.get(token) or _WORD_TO_COLOUR.get(_COLOUR_PREFIX_RE.sub("", token))
        if colour and colour not in found:
            found.append(colour)
    return found[0] if len(found) == 1 else None


def size_of(text: str) -> str | None:
    norm = normalize_arabic(text)
    for rx in _SIZE_RES:
        match = rx.search(norm)
        if match:
            return match.group(1)
    return None


def extract(text: str) -> Constraints:
    norm = normalize_arabic(text)
    max_price = extract_price_limit(text)
    min_match = _MIN_PRICE_RE.search(norm)
    return Constraints(
        max_price=max_price,
        min_price=float(min_match.group(1)) if min_match else None,
        colour=colour_of(text),
        size=size_of(text),
        # "cheaper than 200" is a price bound, already in max_price.
        cheaper=bool(_CHEAPER_RE.search(norm)) and max_price is None,
    )
