"""Rule-based intent classification for customer messages (Arabic MSA, Gulf, English).

Why rules and not a model: this runs first in every turn and must be instant, deterministic
and explainable to a merchant ("why did the bot hand me over?"). It does not have to be
perfect, because it is not the last word: for shopping-vs-policy the caller searches both
the catalogue and the knowledge base whenever :class:`Intent` says both are plausible
(``product_hint`` and ``policy_hint``), and retrieval scores decide. The classifier only has
to be sure about the cheap, unambiguous cases: greetings, thanks, "give me a human", and
obviously unrelated chatter.

All rules run on :func:`engine.domain.text.normalize_arabic` output; rule tables are written in
ordinary spelling and folded with :func:`engine.domain.text.fold_arabic` at import (pure CPU work,
no I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from engine.domain.text import (
    STOPWORDS,
    extract_price_limit,
    fold_arabic,
    normalize_arabic,
    tokenize,
)

# Every intent a reply can carry: THE list (metrics label values, analytics, the console).
GREETING: Final = "greeting"
PRODUCT_SEARCH: Final = "product_search"
PRODUCT_DETAIL: Final = "product_detail"
POLICY_QUESTION: Final = "policy_question"
HANDOFF: Final = "handoff"
THANKS: Final = "thanks"
OUT_OF_SCOPE: Final = "out_of_scope"
ADD_TO_CART: Final = "add_to_cart"
VIEW_CART: Final = "view_cart"
CHECKOUT: Final = "checkout"
ORDER_STATUS: Final = "order_status"
CLARIFY: Final = "clarify"  # close matches, unsure: a short question back
FALLBACK: Final = "fallback"  # the pipeline kept failing: an honest apology and a human
AGENT: Final = "agent"  # a reply typed by staff, not the bot

INTENTS: Final[tuple[str, ...]] = (
    GREETING,
    PRODUCT_SEARCH,
    PRODUCT_DETAIL,
    POLICY_QUESTION,
    HANDOFF,
    THANKS,
    OUT_OF_SCOPE,
    ADD_TO_CART,
    VIEW_CART,
    CHECKOUT,
    ORDER_STATUS,
    CLARIFY,
    FALLBACK,
    AGENT,
)
# Replies that answered the customer without showing products.
ANSWERED: Final = frozenset({POLICY_QUESTION, GREETING, THANKS, AGENT})


@dataclass(frozen=True, slots=True)
class Intent:
    """The classifier's verdict.

    ``product_hint``/``policy_hint`` say which indexes are worth searching; both are true when
    the message is ambiguous, so the caller can search both and let retrieval scores decide
    rather than trusting a keyword rule.
    """

    name: str
    confidence: float
    product_hint: bool = False
    policy_hint: bool = False


# --- rule tables ------------------------------------------------------------------------------

_AR_CHAR: Final = re.compile("[\u0600-\u06ff]")
# Arabic glues conjunctions, prepositions and the article to the next word: "والشحن", "بالتوصيل".
# Lazy (``??``) so the bare word is tried first: "السلام عليكم ورحمة الله" must match as the
# long phrase, not as prefix "ال" + the shorter alternative "سلام عليكم".
_AR_PREFIX: Final = r"(?:[وفبكل]?ال|لل|[وفبكل])??"


def _rx(*terms: str) -> re.Pattern[str]:
    """Compile whole-word alternatives; Arabic terms also match with attached prefixes."""
    parts = []
    for term in sorted((fold_arabic(t) for t in terms), key=len, reverse=True):
        prefix = _AR_PREFIX if _AR_CHAR.match(term) else ""
        parts.append(f"{prefix}(?:{term})")
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")


# Questions about the bot itself: answered as out of scope (a short "I'm the store assistant"),
# and checked before handoff so "are you human?" is not taken as "give me a human".
_META_RX: Final = _rx(
    r"are you (?:a |an )?(?:human|bot|robot|real|ai|person)",
    r"who are you",
    r"what(?:'s| is) your name",
    r"(?:انت|هل انت) (?:بوت|روبوت|انسان|حقيقي|ذكاء اصطناعي)",
    r"(?:من|مين) انت",
    r"(?:وش|ايش|ما) اسمك",
)

_HANDOFF_RX: Final = _rx(
    # English
    r"(?:a |an |the )?(?:human|humans|real person|live person|live agent|agent|representative)",
    r"customer (?:service|support|care)",
    r"support team",
    r"(?:talk|speak|chat) (?:to|with) (?:a |an |the |your )?"
    r"(?:someone|somebody|person|human|staff|team|manager|agent|employee|support|"
    r"representative|real person)",
    r"(?:connect|transfer) me",
    r"manager|supervisor|operator",
    r"call me",
    # Arabic (MSA + Gulf)
    r"موظف\w*",
    r"خدمة العملاء|دعم العملاء|الدعم الفني|خدمة الزبائن",
    r"شخص حقيقي|انسان|بشري|مسؤول|المدير|مشرف",
    r"(?:اكلم|أكلم|اتكلم|أتكلم|اتحدث|أتحدث|التحدث|الكلام|احكي|اتواصل|التواصل|تواصلني)"
    r"(?: مع)? (?:احد|أحد|شخص|موظف\w*|انسان|إنسان|مسؤول|المسؤول|مدير|المدير|الدعم|خدمة\w*)",
    r"حولني|حوّلني|كلمني|كلموني|اتصلوا (?:علي|بي)|اتصل (?:علي|بي)",
)

_POLICY_RX: Final = _rx(
    # English
    r"ship|ships|shipping|shipped|shipment|delivery|deliver|delivers|delivered|courier",
    r"return|returns|returning|refund|refunds|exchange|exchanges|cancel|cancellation",
    r"warranty|guarantee",
    r"payment|payments|pay|paying|cash on delivery|cod|installments?|tabby|tamara|"
    r"apple pay|mada|credit card|visa|mastercard",
    r"(?:working|opening|business|store) hours|hours|open|opening|closed",
    r"track|tracking|order status|where is my order|my order",
    r"policy|policies|terms",
    r"gift ?wrap|gift ?wrapping|wrapping|wrap it",
    r"how (?:many|long) (?:days|does|will|to|until)",
    r"arrive|arrives|arrival|fees?",
    # Arabic (MSA + Gulf)
    r"شحن\w*|توصيل|يوصل\w*|توصل\w*|توصلون|وصول|مندوب",
    r"ترجيع|ارجاع|إرجاع|استرجاع|استرداد|ارجع\w*|أرجع\w*|رجع\w*",
    r"استبدال|تبديل|ابدل\w*|أبدل\w*",
    r"ضمان|كفالة",
    r"دفع|ادفع|أدفع|الدفع عند الاستلام|الاستلام|مدى|فيزا|بطاقة|بطاقات|تقسيط|تابي|تمارا|"
    r"ابل باي|أبل باي|رسوم|مصاريف",
    r"ساعات (?:العمل|الدوام)|الدوام|دوامكم|تفتحون|تسكرون|مفتوح|مفتوحين|تقفلون",
    r"تتبع\w*|اتتبع|أتتبع|رقم التتبع|طلبي|طلبيتي|وين طلبي|الغاء|إلغاء",
    r"سياسة|سياسات|شروط",
    r"تغليف|تغليف الهدايا|بطاقة اهداء|بطاقة إهداء",
    r"كم يوم|كم ايام|كم أيام|متى يوصل|متى توصل|متى يوصلني",
)

_PRODUCT_NOUN_RX: Final = _rx(
    # English
    r"shoes?|sneakers?|trainers?|sandals?|slippers?|boots?|heels?|loafers?|footwear",
    r"bags?|handbags?|backpacks?|wallets?|purses?|clutch|tote",
    r"abayas?|dress|dresses|shirts?|thobe|scarf|hijab|shayla",
    r"perfumes?|fragrances?|oud|musk|bakhoor|cologne",
    r"watch|watches|smartwatch",
    r"phone|phones|iphone|samsung|case|cases|cover|charger|chargers|cable|cables|earbuds|"
    r"headphones|airpods|power bank|powerbank|screen protector|stand|holder",
    r"gift|gifts|product|products|item|items|collection",
    # Arabic
    r"حذاء|احذية|أحذية|جزم\w*|نعال|نعل|صندل\w*|صنادل|شبشب|كعب|بوت|كندرة",
    r"حقيب\w*|حقائب|شنط\w*|جنط\w*|محفظ\w*",
    r"عباي\w*|فستان|فساتين|ثوب|ثياب|شماغ|طرحة|شيلة|لبس",
    r"عطر\w*|عطور|بخور|عود|مسك|دهن",
    r"ساعة|ساعات",
    r"جوال\w*|ايفون|آيفون|سامسونج|كفر\w*|غطاء|شاحن\w*|كيبل|سلك|سماع\w*|باور بانك|حامل|ستاند",
    r"هدي\w*|منتج\w*",
)

_PRODUCT_GENERIC_RX: Final = _rx(
    # English
    r"do you have|have you got|do you sell|looking for|show me|i want|i need|i'm looking|"
    r"buy|purchase|cheap|cheapest|expensive|price|prices|cost|how much|available|"
    r"in stock|size|sizes|colou?rs?|black|white|red|blue|brown|pink|gold|silver|green|beige|"
    r"leather|men|mens|women|womens|kids|new|discount|offer|offers|sale|recommend",
    # Arabic
    r"عندكم|عندك|تبيعون|متوفر\w*|موجود\w*|ابغى|ابغي|أبغى|ابي|أبي|اريد|أريد|ودي|ابحث|أبحث|"
    r"اشتري|أشتري|شراء|سعر\w*|اسعار|أسعار|بكم|كم سعر|رخيص\w*|ارخص|أرخص|غالي|"
    r"مقاس\w*|قياس|لون|الوان|ألوان|اسود|سوداء|ابيض|بيضاء|احمر|حمراء|ازرق|زرقاء|بني|وردي|"
    r"ذهبي|فضي|جلد\w*|رجالي|نسائي|اطفال|أطفال|خصم|عرض|عروض|تخفيض\w*|جديد",
)

_OUT_OF_SCOPE_RX: Final = _rx(
    # English
    r"weather|temperature|rain|forecast",
    r"politics|political|president|election|elections|government|war|prime minister",
    r"jokes?|funny|tell me a story|poem|song|songs|lyrics|movie|movies|film|music",
    r"football|soccer|match|who won|world cup|league|score|basketball",
    r"news|recipe|cook|cooking|homework|math|capital of|bitcoin|crypto|stock market",
    r"meaning of life|girlfriend|boyfriend|horoscope",
    # Arabic
    r"الطقس|الجو|درجة الحرارة|مطر|أمطار",
    r"السياسة|سياسي\w*|الانتخابات|انتخابات|الرئيس|الحكومة|الحرب|رئيس الوزراء",
    r"نكت\w*|نكته|نكتة|قصة|قصيدة|اغني\w*|أغني\w*|فيلم|افلام|أفلام|مسلسل",
    r"مباراة|مباراه|ماتش|من فاز|مين فاز|مين فاز|الدوري|كورة|كرة القدم|كاس العالم|كأس العالم",
    r"اخبار|أخبار|الاخبار|وصفة|طبخ|واجب|رياضيات|عاصمة|بيتكوين|عملات رقمية|الاسهم|الأسهم",
)

_GREETING_RX: Final = _rx(
    # English
    r"hi+|hello+|hey+|heya|hiya|yo|howdy|greetings|good (?:morning|afternoon|evening|day)",
    r"salam|salaam|as?salamu? ?alaikum|salam alaikum|marhaba",
    # Arabic
    r"السلام عليكم(?: ورحمة الله(?: وبركاته)?)?|سلام عليكم|سلام|وعليكم السلام",
    r"مرحبا|مرحبتين|مرحب|اهلا|أهلا|اهلين|أهلين|هلا(?: والله| وغلا)?|يا هلا|حياك|حياكم",
    r"صباح الخير|صباح النور|مساء الخير|مساء النور|الو|هاي",
)

_THANKS_RX: Final = _rx(
    # English
    r"thanks?|thank you(?: (?:so|very) much)?|thanks a lot|thx|ty|tysm|much appreciated|"
    r"appreciate it|cheers",
    r"bye|goodbye|good bye|see you|see ya|take care|have a (?:nice|good|great) day|"
    r"that'?s all|that is all",
    # Arabic
    r"شكرا|شكرًا|مشكور\w*|يعطيك العافية|الله يعطيك العافية|جزاك الله خير\w*|تسلم\w*|يسلمو|"
    r"ما قصرت\w*|ماقصرت\w*|الله يسعدك|كفيت ووفيت",
    r"مع السلامة|في امان الله|في أمان الله|باي|الى اللقاء|إلى اللقاء",
)

# Politeness that may accompany a greeting or a thank-you without changing what it is.
_FILLER_RX: Final = _rx(
    r"there|team|everyone|all|guys|dear|sir|madam|bot|friend|please|again|so|very|much|"
    r"how are you(?: doing)?|how r u|what'?s up|sup|ok|okay|great|perfect|awesome|nice|"
    r"cool|got it|help|lot|you|and|have|a|nice|day|good",
    r"كيف الحال|كيف حالك|كيف حالكم|كيفك|شلونك|شلونكم|عساك طيب|عساكم بخير|الله يحييك|"
    r"الله يحييكم|يا|اخوي|أخوي|اخي|أخي|اختي|أختي|الغالي|حبيبي|تمام|اوكي|اوك|خلاص|طيب|"
    r"مساعدة|ساعدني|كثير|جزيلا|جزيلاً|والله|و",
)


def _strip(rx: re.Pattern[str], text: str) -> tuple[str, bool]:
    stripped, count = rx.subn(" ", text)
    return stripped, count > 0


def _content_tokens(text: str) -> list[str]:
    return [t for t in tokenize(text) if t not in STOPWORDS]


def classify(text: str) -> Intent:
    """Classify one customer message (or several coalesced into one turn).

    Order matters and encodes product decisions: a request for a human wins over everything
    (never trap a customer with the bot); a greeting or thank-you only counts when it is
    (almost) the whole message, so "hi, do you have red shoes" is a product search; a policy
    keyword beats shopping words but keeps ``product_hint`` so both indexes are searched.
    """
    norm = normalize_arabic(text)
    if not tokenize(norm):
        return Intent(OUT_OF_SCOPE, 0.3)

    if _META_RX.search(norm):
        return Intent(OUT_OF_SCOPE, 0.8)
    if _HANDOFF_RX.search(norm):
        return Intent(HANDOFF, 0.95)

    rest, greeted = _strip(_GREETING_RX, norm)
    rest, thanked = _strip(_THANKS_RX, rest)
    if not _content_tokens(_strip(_FILLER_RX, rest)[0]):
        if thanked:
            return Intent(THANKS, 0.95)
        if greeted:
            return Intent(GREETING, 0.95)
        # Only fillers ("ok", "تمام"): an acknowledgement; answer it like a thank-you.
        return Intent(THANKS, 0.5)

    policy_rest, policy = _strip(_POLICY_RX, rest)
    # Product words are looked for in what the policy phrases left over, so "ساعات العمل"
    # (working hours) does not also count as "ساعات" (watches).
    noun = bool(_PRODUCT_NOUN_RX.search(policy_rest))
    generic = bool(_PRODUCT_GENERIC_RX.search(policy_rest)) or (
        extract_price_limit(policy_rest) is not None
    )
    product = noun or generic

    if policy:
        if product:
            return Intent(POLICY_QUESTION, 0.6, product_hint=True, policy_hint=True)
        return Intent(POLICY_QUESTION, 0.9, policy_hint=True)
    if noun:
        return Intent(PRODUCT_SEARCH, 0.9, product_hint=True)
    if _OUT_OF_SCOPE_RX.search(rest):
        return Intent(OUT_OF_SCOPE, 0.85 if not generic else 0.6)
    if generic:
        return Intent(PRODUCT_SEARCH, 0.7, product_hint=True)
    # Nothing recognised: most unknown words in a store chat are product names or brands.
    # Search both indexes and let retrieval (or the honest no-match reply) decide.
    return Intent(PRODUCT_SEARCH, 0.4, product_hint=True, policy_hint=True)


# --- commerce and follow-up intents -------------------------------------------------------------
# Checked by the turn service before ``classify`` (they need the conversation's context to mean
# anything: "add it" with nothing shown is just a product search).


_ORDER_STATUS_RX: Final = _rx(
    r"order status|status of (?:my|the) order|where(?:'s| is) my order|track (?:my|the) order|"
    r"has my order (?:shipped|arrived)|my order status",
    r"وين طلبي|وين الطلب|حالة (?:ال)?طلب\w*|حاله (?:ال)?طلب\w*|تتبع (?:ال)?طلب\w*|"
    r"طلبي وين|متى يوصل طلبي|وش صار على طلبي|ايش صار على طلبي|رقم الطلب",
)
_CHECKOUT_RX: Final = _rx(
    r"check ?out|place (?:an |the |my )?order|complete (?:my |the )?order|confirm (?:my |the )?"
    r"order|i(?:'d| would)? (?:like|want) to order|order (?:it|this|them|now)|buy (?:it )?now|"
    r"i(?:'ll| will) (?:take|buy) (?:it|this|them)|proceed to (?:payment|checkout)",
    r"ابي اطلب|ابغى اطلب|ابغي اطلب|اريد (?:ان )?اطلب|ودي اطلب|اطلبه|اطلبها|اكمل الطلب|"
    r"اتمام الطلب|تاكيد الطلب|اكد الطلب|ثبت الطلب|ابي اشتري|ابغى اشتريه|بشتري|الدفع الحين|"
    r"اطلب الحين|خلصني الطلب",
)
_ADD_RX: Final = _rx(
    r"add (?:it|this|that|them|the \w+(?: one)?|one|two|\d+)?"
    r"\s*(?:to (?:my |the )?(?:cart|bag|basket))?",
    r"(?:put|throw) (?:it|this|that) in (?:my |the )?(?:cart|bag|basket)",
    r"i(?:'ll| will) take (?:it|this|one)",
    r"ضيفه|ضيفها|اضيفه|اضفه|اضفها|ضيف|اضف|حطه في السله|حطها في السله|حطه بالسله|"
    r"ابيه|ابيها|ابغاه|ابغاها|ابغيه|اخذه|اخذها|باخذه|باخذها|خذ لي|اضافه للسله|اضافة للسله",
)
_VIEW_CART_RX: Final = _rx(
    r"(?:my|the|show|view|see) (?:cart|basket|bag)|what(?:'s| is) in my (?:cart|basket|bag)|cart",
    r"سلتي|السله|سله المشتريات|سلة المشتريات|وش في السله|ايش في السله|عربتي|عربه التسوق",
)
_CANCEL_RX: Final = _rx(
    r"cancel|never ?mind|forget it|stop|no thanks",
    r"الغاء|الغي|لا خلاص|خلاص لا|بطلت|ما ابي|ما ابغى|لا شكرا|وقف",
)
_ORDINALS: Final[dict[str, int]] = {
    **{
        fold_arabic(k): v
        for k, v in {
            "first": 1,
            "1st": 1,
            "second": 2,
            "2nd": 2,
            "third": 3,
            "3rd": 3,
            "last": -1,
            "الاول": 1,
            "الأول": 1,
            "الأولى": 1,
            "الاولى": 1,
            "اول": 1,
            "أول": 1,
            "الثاني": 2,
            "الثانية": 2,
            "الثانيه": 2,
            "ثاني": 2,
            "الثالث": 3,
            "الثالثة": 3,
            "الثالثه": 3,
            "ثالث": 3,
            "الاخير": -1,
            "الأخير": -1,
            "الاخيرة": -1,
            "الأخيرة": -1,
            "الاخيره": -1,
        }.items()
    },
}
_ORDINAL_RE: Final = re.compile(
    r"(?<!\w)("
    + "|".join(sorted((re.escape(normalize_arabic(k)) for k in _ORDINALS), key=len, reverse=True))
    + r")(?!\w)"
    r"|(?:number|no\.?|#|رقم)\s*(\d)"
)
_PRONOUN_DETAIL_RX: Final = _rx(
    r"how much is (?:it|this|that|the \w+ one)|what(?:'s| is) (?:the |its )?price|"
    r"price of (?:it|this|that)|"
    r"tell me more|more (?:details|info)|details|is it (?:available|in stock)|what sizes?|"
    r"(?:the|that) one",
    r"كم سعره|كم سعرها|بكم هذا|بكم هذي|بكم هو|بكم هي|سعره|سعرها|تفاصيل\w*|متوفر\w*|"
    r"كم حقه|كم حقها|وش مقاساته|عطني تفاصيل",
)
# Follow-ups that only make sense about something already shown.
_FOLLOWUP_CHEAPER_RX: Final = _rx(
    r"cheaper|cheaper one|anything cheaper|something cheaper|less expensive",
    r"ارخص|ارخص منه|ارخص منها|اقل سعر|شي ارخص|فيه ارخص|في ارخص",
)


def ordinal(text: str) -> int | None:
    """1-based position ("the second one", "الثاني", "رقم 2"), -1 for "last", else None."""
    match = _ORDINAL_RE.search(normalize_arabic(text))
    if not match:
        return None
    if match.group(2):
        return int(match.group(2))
    return _ORDINALS.get(match.group(1))


def commerce_intent(text: str, *, has_context: bool, has_cart: bool) -> str | None:
    """Order status / checkout / add to cart / view cart / product detail, or None.

    ``has_context``: products were shown earlier in this conversation (so "add it" and "the
    second one" refer to something). Handoff is still decided by :func:`classify` first.
    """
    norm = normalize_arabic(text)
    if _HANDOFF_RX.search(norm):
        return None
    if _ORDER_STATUS_RX.search(norm):
        return ORDER_STATUS
    if _CHECKOUT_RX.search(norm) and (has_context or has_cart):
        return CHECKOUT
    if _VIEW_CART_RX.search(norm) and not _ADD_RX.search(norm):
        return VIEW_CART
    if has_context and _ADD_RX.search(norm):
        return ADD_TO_CART
    referenced = ordinal(text) is not None or _PRONOUN_DETAIL_RX.search(norm)
    if has_context and referenced and not _POLICY_RX.search(norm):
        return PRODUCT_DETAIL
    return None


def is_cancel(text: str) -> bool:
    return bool(_CANCEL_RX.search(normalize_arabic(text)))


def is_cheaper_followup(text: str) -> bool:
    return bool(_FOLLOWUP_CHEAPER_RX.search(normalize_arabic(text)))


def has_product_noun(text: str) -> bool:
    """Whether the message names a kind of product ("shoes", "شنطة"), i.e. is a new search."""
    return bool(_PRODUCT_NOUN_RX.search(normalize_arabic(text)))
