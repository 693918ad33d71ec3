"""Text handling for Arabic (MSA and Gulf) and English customer messages.

Everything downstream (intents, lexical ranking, passage selection) works on the same
normalised form, so that "أبغى جزمة سوداء" written with hamza, tatweel, tashkeel or
Arabic-Indic digits matches a catalogue written without them. The functions are pure and
table-driven: no models, no I/O, deterministic, cheap enough to run inside a conversation
turn on the event loop.
"""

from __future__ import annotations

import functools
import re
from typing import Final, Literal

Language = Literal["ar", "en"]

# --- normalisation ---------------------------------------------------------------------------

# Tashkeel (fathatan .. sukun, plus the extended marks up to U+065F), the superscript alef, and
# the Quranic annotation marks. They are optional in written Arabic, so they must never decide
# whether two words match.
_DIACRITICS_RE: Final = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")
_TATWEEL: Final = "\u0640"

_CHAR_MAP: Final[dict[int, str]] = {
    # alef forms: hamza above/below, madda, wasla
    ord("أ"): "ا",
    ord("إ"): "ا",
    ord("آ"): "ا",
    ord("ٱ"): "ا",
    # alef maqsura / ta marbuta: routinely swapped in informal writing
    ord("ى"): "ي",
    ord("ة"): "ه",
    # hamza carriers
    ord("ؤ"): "و",
    ord("ئ"): "ي",
    # Persian/Urdu keyboard letters that Gulf customers often type by accident
    ord("ی"): "ي",
    ord("ک"): "ك",
    # Arabic decimal and thousands separators
    ord("٫"): ".",
    ord("٬"): ",",
    ord(_TATWEEL): "",
}
# Arabic-Indic (U+0660..) and Extended/Persian (U+06F0..) digits -> ASCII
for _i in range(10):
    _CHAR_MAP[0x0660 + _i] = str(_i)
    _CHAR_MAP[0x06F0 + _i] = str(_i)

_SPACES_RE: Final = re.compile(r"\s+")


def fold_arabic(text: str) -> str:
    """The letter/digit folding of :func:`normalize_arabic` without touching case or spacing.

    Safe to apply to regular-expression sources (``\\W`` must not become ``\\w``), which is how
    rule tables written with ordinary Arabic spelling are brought into the normalised form.
    """
    return _DIACRITICS_RE.sub("", text).translate(_CHAR_MAP)


def normalize_arabic(text: str) -> str:
    """Return the canonical matching form of ``text`` (either language).

    Removes tashkeel and tatweel, unifies alef/ya/ta-marbuta/hamza-carrier variants, turns
    Arabic-Indic and Persian digits into ASCII, lower-cases Latin and collapses whitespace.
    The result is for *matching* only; never show it to a customer (ة→ه is lossy).
    """
    if not text:
        return ""
    return _SPACES_RE.sub(" ", fold_arabic(text).lower()).strip()


def normalize_digits(text: str) -> str:
    """Only the digit/separator part of :func:`normalize_arabic` (keeps letters as typed).

    Useful for parsing numbers out of merchant data without touching its wording.
    """
    return text.translate({k: v for k, v in _CHAR_MAP.items() if v.isdigit() or v in ".,"})


# --- language ---------------------------------------------------------------------------------

_ARABIC_LETTER_RE: Final = re.compile("[\u0621-\u064a\u0671-\u06d3\u06fa-\u06ff]")
_LATIN_LETTER_RE: Final = re.compile("[A-Za-z\u00c0-\u024f]")


def detect_language(text: str) -> Language:
    """ "ar" when Arabic-script letters are at least half of the letters, else "en".

    Letters, not words, are counted: it is robust to emojis, digits and punctuation. A tie goes
    to Arabic because a customer who writes half of a message in Arabic script is almost
    certainly an Arabic reader; a message without letters (empty, "👍", "200") is "en".
    """
    arabic = len(_ARABIC_LETTER_RE.findall(text))
    latin = len(_LATIN_LETTER_RE.findall(text))
    if arabic == 0:
        return "en"
    return "ar" if arabic >= latin else "en"


# --- tokens -----------------------------------------------------------------------------------

# A number keeps its decimal part ("199.5", "1,299") so prices survive tokenisation; words are
# runs of letters of one script, so "وSTC" or "ابيiphone" split into their Arabic and Latin
# parts. Underscore and punctuation (incl. ، ؛ ؟) separate tokens.
_TOKEN_RE: Final = re.compile(
    "\\d+(?:[.,]\\d+)*|[\u0621-\u064a\u0671-\u06d3\u06fa-\u06ff]+|[^\\W\\d_\u0600-\u06ff]+"
)


def tokenize(text: str) -> list[str]:
    """Normalise, then split into word and number tokens; punctuation and emojis are dropped."""
    return _TOKEN_RE.findall(normalize_arabic(text))


def _words(block: str) -> list[str]:
    """Whitespace-separated word lists keep the tables readable (and diffable) in source."""
    return block.split()


# Stopwords in normalised form. Kept small on purpose: words that carry shopping meaning
# ("new", "جديد", colours, sizes) are NOT stopwords; neither are words the intent rules need,
# because intents look at the raw normalised text, not at lexical tokens.

STOPWORDS_EN: Final[frozenset[str]] = frozenset(
    _words(
        """
    a an the and or but if of to in on at by for from with about as into than then so
    is are was were be been being am do does did done have has had having
    i me my mine we us our you your yours he she it its they them their this that these those
    what which who whom whose where when why how
    can could would should will shall may might must
    please pls plz any some there here just also very too really
    want wanted need looking look like show find get give send tell know see
    hi hello hey thanks thank
    under below less cheaper sar sr riyal riyals
    """
    )
)

STOPWORDS_AR: Final[frozenset[str]] = frozenset(
    normalize_arabic(w)
    for w in _words(
        """
    في من على إلى الى عن مع هل هذا هذه ذلك تلك هذي هاذا هاذي ذا اللي الذي التي الذين
    أنا انا أنت انت انتم نحن هو هي هم و أو او ثم لو إذا اذا إن ان أن كان كانت يكون
    يا ما ماذا لا لم لن قد كل بعض عند عندك عندكم لديكم لدي فيه فيها به بها له لها لي
    أريد اريد ابغى ابغي أبغى ابي أبي ودي بدي أحتاج احتاج ممكن لو سمحت رجاء من فضلك
    شي شيء حق حقت عشان علشان لأن لان يعني طيب تمام اوكي
    ريال تحت اقل باقل
    """
    )
)

STOPWORDS: Final[frozenset[str]] = STOPWORDS_EN | STOPWORDS_AR


# --- stemming ---------------------------------------------------------------------------------

# Longest first so "وال" wins over "ال". Stems must keep at least three letters: Arabic roots
# are mostly triliteral, and stripping further merges unrelated words.
_AR_PREFIXES: Final[tuple[str, ...]] = ("وال", "بال", "كال", "فال", "لل", "ال")
# "يه"/"يات" (the feminine nisba, رياضية/رياضيات) go whole, so that رياضي and رياضية meet.
_AR_SUFFIXES: Final[tuple[str, ...]] = ("يات", "يه", "ات", "ون", "ين", "ها", "ه", "ي")
_MIN_STEM: Final = 3


def light_stem_ar(token: str) -> str:
    """Strip one common prefix and one common suffix from a normalised Arabic token.

    A *light* stemmer (no root extraction) because root extraction over-merges product words
    (كتاب/مكتب); we only need "الحقيبة" and "حقيبه" and "حقائب"-style variants to meet.
    """
    for prefix in _AR_PREFIXES:
        if token.startswith(prefix) and len(token) - len(prefix) >= _MIN_STEM:
            token = token[len(prefix) :]
            break
    else:
        # The bare conjunction "و" ("ورسومه" = "and its fee") is glued to any word, but many
        # roots also start with و (وقت، وزن، وصول), so it only goes when 4+ letters remain.
        if token.startswith("و") and len(token) - 1 >= _MIN_STEM + 1:
            token = token[1:]
    for suffix in _AR_SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= _MIN_STEM:
            token = token[: -len(suffix)]
            break
    return token


_EN_ES_RE: Final = re.compile(r"(?:ch|sh|ss|x|z)es$")
_VOWEL_RE: Final = re.compile("[aeiouy]")


def light_stem_en(token: str) -> str:
    """Fold English plurals and -ed/-ing so "shoes"/"shoe" and "returned"/"return" meet.

    Deliberately crude (no Porter): product vocabulary is small, and both sides of every
    comparison go through the same function, so consistency matters more than linguistics.
    """
    if len(token) <= 3 or not token.isascii() or not token.isalpha():
        return token
    if _EN_ES_RE.search(token):
        return token[:-2]
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    for suffix in ("ing", "ed"):
        stem_ = token[: -len(suffix)]
        if token.endswith(suffix) and len(stem_) >= 4 and _VOWEL_RE.search(stem_):
            # "shipping" -> "shipp" -> "ship"; keep "ll"/"ss" ("selling" -> "sell")
            if stem_[-1] == stem_[-2] and stem_[-1] not in "lsz":
                stem_ = stem_[:-1]
            return stem_
    return token


def stem(token: str) -> str:
    """Dispatch to the Arabic or English light stemmer by the token's script."""
    if token and _ARABIC_LETTER_RE.match(token):
        return light_stem_ar(token)
    return light_stem_en(token)


# --- synonyms ---------------------------------------------------------------------------------


def _n(words: str) -> tuple[str, ...]:
    return tuple(normalize_arabic(words).split())


# Gulf dialect and everyday shopping words -> the MSA word a catalogue is likely to use. Keys
# and values are in normalised form. A value may expand to several tokens ("نعال" is sold as
# both shoes and sandals). Multi-word keys are matched on token sequences, longest first.
_SYNONYM_SOURCE: Final[dict[str, str]] = {
    # wanting
    "أبغى": "أريد",
    "ابغى": "أريد",
    "ابغي": "أريد",
    "أبغي": "أريد",
    "ابي": "أريد",
    "أبي": "أريد",
    "ودي": "أريد",
    "بدي": "أريد",
    # footwear
    "جزمة": "حذاء",
    "جزمه": "حذاء",
    "جزم": "حذاء",
    "أحذية": "حذاء",
    "كندرة": "حذاء",
    "كندره": "حذاء",
    "نعال": "حذاء صندل",
    "نعل": "حذاء صندل",
    "شبشب": "صندل",
    "صنادل": "صندل",
    "جوتي": "حذاء",
    # bags
    "شنطة": "حقيبة",
    "شنطه": "حقيبة",
    "شنط": "حقيبة",
    "حقائب": "حقيبة",
    "جنطة": "حقيبة",
    "جنطه": "حقيبة",
    # clothing / beauty / devices
    "عبايات": "عباية",
    "عبايه": "عباية",
    "عطور": "عطر",
    "ريحة": "عطر",
    "جوال": "هاتف",
    "جوالات": "هاتف",
    "موبايل": "هاتف",
    "تلفون": "هاتف",
    "كفر": "غطاء",
    "كفرات": "غطاء",
    "شاحن": "شاحن",
    # colours: feminine forms agree with feminine nouns (جزمة سوداء) but catalogues tend to
    # use the masculine (حذاء أسود)
    "سوداء": "أسود",
    "بيضاء": "أبيض",
    "حمراء": "أحمر",
    "زرقاء": "أزرق",
    "خضراء": "أخضر",
    "صفراء": "أصفر",
    # questions
    "وش": "ماذا",
    "ايش": "ماذا",
    "إيش": "ماذا",
    "شنو": "ماذا",
    "شو": "ماذا",
    "كم سعر": "سعر",
    "بكم": "سعر",
    "بكم سعر": "سعر",
    "كم السعر": "سعر",
    "شكثر": "سعر",
    "قديش": "سعر",
    "رخيص": "رخيص",
    "رخيصة": "رخيص",
    "رخيصه": "رخيص",
    # returns / exchanges: the verb a customer types vs the noun a policy uses
    "ارجع": "إرجاع",
    "أرجع": "إرجاع",
    "ارجعه": "إرجاع",
    "ارجعها": "إرجاع",
    "أرجعه": "إرجاع",
    "ترجيع": "إرجاع",
    "رجعت": "إرجاع",
    "استرجع": "إرجاع استرجاع",
    "ابدل": "استبدال",
    "أبدل": "استبدال",
    "ابدله": "استبدال",
    "أبدله": "استبدال",
    "تبديل": "استبدال",
    "باوربانك": "باور بانك",
    # English shopping variants
    "sneakers": "shoes sneakers",
    "sneaker": "shoes sneakers",
    "trainers": "shoes sneakers",
    "handbag": "bag handbag",
    "handbags": "bag handbag",
    "purse": "bag purse",
    "fragrance": "perfume fragrance",
    "cologne": "perfume cologne",
    "scent": "perfume",
    "cellphone": "phone",
    "mobile": "phone",
    "cover": "case",
    "flip flops": "sandals",
    "slippers": "sandals slippers",
    "how much": "price",
    "cost": "price",
    "costs": "price",
    "fee": "fee price",
    "fees": "fee price",
    "powerbank": "power bank",
    # the verb a customer types vs the noun a shipping policy uses
    "deliver": "delivery",
    "delivers": "delivery",
    "delivered": "delivery",
    "delivering": "delivery",
    "smart watch": "smartwatch",
    "smart watches": "smartwatch",
    "smartwatches": "smartwatch",
    "power-bank": "power bank",
    "earphones": "earbuds headphones",
    "earbuds": "earbuds headphones",
    "charge": "fee price",
    "charges": "fee price",
}

SYNONYMS: Final[dict[tuple[str, ...], tuple[str, ...]]] = {
    _n(k): _n(v) for k, v in _SYNONYM_SOURCE.items()
}
_MAX_PHRASE: Final = max(len(k) for k in SYNONYMS)


def _synonym(phrase: tuple[str, ...]) -> tuple[str, ...] | None:
    found = SYNONYMS.get(phrase)
    if found is None and len(phrase) == 1:
        # "الشنطة", "بالجزمة": the article/preposition is glued on; look up the bare word.
        token = phrase[0]
        for prefix in _AR_PREFIXES:
            if token.startswith(prefix) and len(token) - len(prefix) >= 2:
                return SYNONYMS.get((token[len(prefix) :],))
    return found


def apply_synonyms(tokens: list[str]) -> list[str]:
    """Replace dialect/variant words and phrases (longest match first) by their canonical form."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for size in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            replacement = _synonym(tuple(tokens[i : i + size]))
            if replacement is not None:
                out.extend(replacement)
                i += size
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def lexical_tokens(text: str) -> list[str]:
    """The tokens lexical retrieval compares: normalised, synonym-mapped, stopword-free, stemmed.

    Synonyms run before stopword removal so "ابغى" becomes "اريد" and is then dropped as a
    stopword, while "جزمة" becomes "حذاء" and is kept. Queries and documents must both go
    through this function, otherwise their stems do not meet.
    """
    return list(_lexical_tokens(text))


# Candidate texts repeat across turns (the same products come back for similar queries), so
# a bounded cache turns reranking into mostly dictionary lookups. Bounded: invariant 8.
@functools.lru_cache(maxsize=4096)
def _lexical_tokens(text: str) -> tuple[str, ...]:
    tokens = apply_synonyms(tokenize(text))
    return tuple(stem(t) for t in tokens if t not in STOPWORDS)


# --- price limits -----------------------------------------------------------------------------

# A number starts only where a digit run starts (the lookbehind) and is bounded: unanchored,
# ``\d+`` was retried at every position of a long digit run and backtracked through it, work
# quadratic in the run's length on the host's event loop (seconds for 4,096 digits).
_NUM: Final = r"(?<![\d.,])(\d{1,12}(?:,\d{3}){0,4}(?:\.\d{1,4})?)(?![\d])"
_CUR: Final = r"(?:\s*(?:sar|sr|riyals?|rs|aed|usd|\$|ريال|ريالات|ر\.?س|رس|درهم|دولار))?"
_PRICE_LIMIT_RES: Final[tuple[re.Pattern[str], ...]] = (
    # "under 200", "less than 200 SAR", "below SAR 200", "up to 99.5", "< 200". A bare "max"
    # is not a limit: "Air Max 90", "Pro Max 256" are product names.
    re.compile(
        r"(?:under|below|less than|lower than|cheaper than|no more than|not more than|"
        r"at most|maximum|max price|max budget|up to|budget(?: is| of)?|<=?)\s*"
        r"(?:sar|sr|\$|usd|aed)?\s*" + _NUM
    ),
    # "اقل من ٢٠٠", "تحت 150", "ارخص من", "ما يزيد عن", "لا يتجاوز", "حد اقصى", "ميزانيتي"
    re.compile(
        r"(?:اقل من|اقل|تحت|ارخص من|دون|ما يزيد عن|لا يزيد عن|ما يتعدي|لا يتعدي|ما يتجاوز|"
        r"لا يتجاوز|بحد اقصي|حد اقصي|الحد الاقصي|ميزانيتي|في حدود|بحدود)\s*"
        r"(?:ال)?" + _NUM
    ),
    # "200 SAR or less", "200 ريال او اقل"
    re.compile(_NUM + _CUR + r"\s*(?:or less|or below|or under|and below|او اقل|وتحت|واقل)"),
)


_NOT_PRICE_UNIT_RE: Final = re.compile(
    r"\s*(?:days?|hours?|hrs?|weeks?|months?|years?|minutes?|mins?|kg|g|cm|mm|ml|gb|tb|%|"
    r"يوم|ايام|ساعه|ساعات|اسبوع|اسابيع|شهر|اشهر|سنه|سنوات|دقيقه|دقائق|كيلو|جرام|سم|مل)\b"
)


def extract_price_limit(text: str) -> float | None:
    """Return the upper price bound a customer asked for, or ``None``.

    Handles English and Arabic (incl. Arabic-Indic digits, thousands separators, currency
    words on either side of the number). Only *upper* limits are extracted: that is what
    customers say ("under 200"); the caller filters candidates by ``price <= limit``.
    """
    norm = normalize_arabic(text)
    for pattern in _PRICE_LIMIT_RES:
        for match in pattern.finditer(norm):
            # "up to 5 days", "اقل من 3 ايام": a limit, but not on price
            if _NOT_PRICE_UNIT_RE.match(norm, match.end(1)):
                continue
            try:
                return float(match.group(1).replace(",", ""))
            except ValueError:  # pragma: no cover - the regex only captures numbers
                continue
    return None


def expand_for_embedding(text: str) -> str:
    """The query the dense encoder sees: the customer's words plus canonical synonyms.

    Multilingual encoders know MSA far better than Gulf shopping words ("جزمة", "شنطة"), so the
    canonical forms are appended (never substituted: the original wording still counts).
    """
    tokens = tokenize(text)
    extra = [w for w in apply_synonyms(tokens) if w not in tokens and w not in STOPWORDS]
    if not extra:
        return text
    return f"{text} ({' '.join(dict.fromkeys(extra))})"
