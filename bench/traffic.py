"""Question mixes for bench/ttfr.py.

``uniform``: the eight fixed questions in turn, each from a new customer (the historical
benchmark). ``realistic``: what a store's inbox looks like — a few hundred distinct questions
drawn Zipf-like (a handful of them most of the time), 30 % in Gulf Arabic spelling, 30 % in MSA,
40 % in English, and follow-ups ("how much is it?") in a conversation that already got an
answer. Seeded, so two runs send the same sequence.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

ORIGINAL = [
    "أبغى جزمة رياضية",
    "do you have white sneakers?",
    "كم رسوم الشحن؟",
    "what is your return policy?",
    "عندكم عطر عود؟",
    "I need a leather bag",
    "ساعة رجالية",
    "phone charger",
]

_EN_ITEMS = [
    "running shoes",
    "white sneakers",
    "leather shoes",
    "high heels",
    "kids sneakers",
    "red sneakers",
    "sandals",
    "slides",
    "leather handbag",
    "laptop backpack",
    "travel bag",
    "wallet",
    "crossbody bag",
    "black abaya",
    "embroidered abaya",
    "linen abaya",
    "oud perfume",
    "musk",
    "rose perfume",
    "men's watch",
    "smart watch",
    "gold watch",
    "iphone case",
    "usb-c charger",
    "wireless earbuds",
    "power bank",
    "screen protector",
]
_EN_TEMPLATES = ["do you have {}?", "I need {}", "{} price", "show me {} under 300"]
_EN_POLICY = [
    "what is your return policy?",
    "how much is shipping?",
    "how long does delivery take?",
    "which payment methods do you accept?",
    "what are your working hours?",
    "is there a warranty?",
    "how do I track my order?",
    "can I pay cash on delivery?",
]
_MSA_ITEMS = [
    "حذاء رياضي",
    "حذاء أبيض",
    "حذاء جلد",
    "كعب عالي",
    "حذاء أطفال",
    "صندل",
    "حقيبة يد",
    "حقيبة ظهر",
    "حقيبة سفر",
    "محفظة",
    "عباية سوداء",
    "عباية مطرزة",
    "عطر عود",
    "مسك",
    "عطر نسائي",
    "ساعة رجالية",
    "ساعة ذكية",
    "ساعة ذهبية",
    "غطاء ايفون",
    "شاحن سريع",
    "سماعات لاسلكية",
    "بطارية متنقلة",
    "واقي شاشة",
]
_MSA_TEMPLATES = ["هل لديكم {}؟", "أريد {}", "كم سعر {}؟", "{} بأقل من 300"]
_MSA_POLICY = [
    "ما سياسة الاسترجاع؟",
    "كم رسوم الشحن؟",
    "كم مدة التوصيل؟",
    "ما طرق الدفع المتاحة؟",
    "ما ساعات العمل؟",
    "هل يوجد ضمان؟",
    "كيف أتتبع طلبي؟",
]
_GULF_ITEMS = [
    "جزمة رياضية",
    "جزمة بيضا",
    "جزمة جلد",
    "كعب",
    "جزمة بزران",
    "نعال",
    "شنطة",
    "شنطة ظهر",
    "شنطة سفر",
    "بوك",
    "عباية سودا",
    "عباية مطرزة",
    "عطر عود",
    "مسك",
    "عطر حريمي",
    "ساعة رجالي",
    "ساعة سمارت",
    "ساعة ذهبي",
    "كفر ايفون",
    "شاحن",
    "سماعات",
    "باور بانك",
    "استكرة شاشة",
]
_GULF_TEMPLATES = ["عندكم {}؟", "أبغى {}", "بكم {}؟", "ابي {} ارخص من 300"]
_GULF_POLICY = [
    "وش سياسة الاسترجاع؟",
    "كم الشحن؟",
    "متى يوصل الطلب؟",
    "وش طرق الدفع؟",
    "متى تفتحون؟",
    "فيه ضمان؟",
    "وين وصل طلبي؟",
]
_FOLLOW_UPS = {
    "en": ["how much is it?", "do you have it in black?", "anything cheaper?", "is it in stock?"],
    "msa": ["كم سعره؟", "هل يتوفر باللون الأسود؟", "هل يوجد أرخص؟", "هل هو متوفر؟"],
    "gulf": ["بكم؟", "فيه لون اسود؟", "فيه ارخص؟", "متوفر؟"],
}
# Shares of traffic by wording (the 30 % Gulf spelling).
_LANGUAGES = (("gulf", 0.3), ("msa", 0.3), ("en", 0.4))
FOLLOW_UP_SHARE = 0.3
ZIPF_S = 1.1


def pool(language: str) -> list[str]:
    """Distinct questions of one wording, most-asked first (policies, then products)."""
    items, templates, policy = {
        "en": (_EN_ITEMS, _EN_TEMPLATES, _EN_POLICY),
        "msa": (_MSA_ITEMS, _MSA_TEMPLATES, _MSA_POLICY),
        "gulf": (_GULF_ITEMS, _GULF_TEMPLATES, _GULF_POLICY),
    }[language]
    asked = [t.format(i) for t, i in itertools.product(templates, items)]
    return [*policy, *asked]


@dataclass(frozen=True, slots=True)
class Message:
    text: str
    follow_up: bool  # to a customer whose previous message was answered


class Mix:
    def __init__(self, name: str, seed: int = 7) -> None:
        self.name = name
        self._rng = random.Random(seed)
        self._n = 0
        self._pools = {lang: pool(lang) for lang, _ in _LANGUAGES}
        self._weights = {
            lang: [1.0 / (rank + 1) ** ZIPF_S for rank in range(len(p))]
            for lang, p in self._pools.items()
        }

    def distinct(self) -> int:
        return sum(len(p) for p in self._pools.values()) if self.name == "realistic" else 8

    def pick(self, n: int) -> int:
        """Which of ``n`` answered conversations a follow-up goes to (recent ones likelier)."""
        return max(0, n - 1 - int(self._rng.expovariate(1 / 20)) % n)

    def next(self) -> Message:
        self._n += 1
        if self.name != "realistic":
            return Message(ORIGINAL[(self._n - 1) % len(ORIGINAL)], follow_up=False)
        lang = self._rng.choices([lang for lang, _ in _LANGUAGES], [w for _, w in _LANGUAGES])[0]
        if self._rng.random() < FOLLOW_UP_SHARE:
            return Message(self._rng.choice(_FOLLOW_UPS[lang]), follow_up=True)
        text = self._rng.choices(self._pools[lang], self._weights[lang])[0]
        return Message(text, follow_up=False)
