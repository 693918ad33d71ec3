"""The product relevance set: a bilingual graded catalogue + queries, written once, committed.

Why our own set: no public product-relevance set is reachable offline (WANDS' and ESCI's data
are Git LFS objects the mirror lacks), and the engine's fusion weights had only ever been tuned
on ARCD (Arabic questions -> encyclopedia paragraphs), which is not how shoppers search.

The data under ``engine/evaluation/data/products/`` is the source of truth; this module is how
it was made (``python -m engine.evaluation.product_set --out engine/evaluation/data/products``
rewrites the same bytes: one seeded ``random.Random``, no clock, no model). Grades come from the
structured facts each product was written from, never from a ranker:

* 3: the product type asked for, and every attribute the query names (colour / scent / origin,
  brand, a feature only the description states);
* 2: the same type, some named attribute different;
* 1: a related type (same aisle: running shoes for "sandals", a charger for "phone case");
* 0: anything else (not listed).

Features (waterproof, for flat feet, sugar-free...) appear only in descriptions, never in titles:
queries that name one measure whether ranking reads what a product says.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 14


@dataclass(frozen=True, slots=True)
class Feature:
    key: str
    en_q: str  # how a shopper says it
    en_d: str  # how a description says it (a sentence fragment)
    ar_q: str
    ar_d: str


@dataclass(frozen=True, slots=True)
class Kind:
    key: str
    store: str
    group: str
    en: str  # canonical English name (titles)
    en_alt: tuple[str, ...]  # other English ways to say it
    ar: str  # canonical Arabic name (titles)
    ar_alt: tuple[str, ...]  # Gulf / colloquial spellings
    typos: tuple[str, ...]
    features: tuple[Feature, ...]
    material_en: tuple[str, ...] = ()
    material_ar: tuple[str, ...] = ()
    price: tuple[int, int] = (50, 500)


F = Feature

KINDS: tuple[Kind, ...] = (
    # --- fashion ------------------------------------------------------------------------------
    Kind(
        "running_shoes",
        "fashion",
        "footwear",
        "Running Shoes",
        ("sneakers for running", "trainers"),
        "حذاء جري",
        ("جزمة رياضية", "جزمة جري", "كوتشي"),
        ("runing shoes", "running shose", "runnig shoes"),
        (
            F(
                "waterproof",
                "waterproof",
                "has a waterproof upper that keeps your feet dry in the rain",
                "مقاوم للماء",
                "بطبقة خارجية مقاومة للماء تحافظ على جفاف القدم في المطر",
            ),
            F(
                "flat_feet",
                "for flat feet",
                "adds firm arch support, a good choice for flat feet",
                "للقدم المسطحة",
                "بدعامة قوية لقوس القدم مناسبة لأصحاب القدم المسطحة",
            ),
        ),
        ("breathable mesh", "knit fabric"),
        ("شبك يسمح بالتهوية", "قماش محبوك"),
        (180, 650),
    ),
    Kind(
        "sandals",
        "fashion",
        "footwear",
        "Sandals",
        ("slides", "flip flops"),
        "صندل",
        ("نعال", "شبشب"),
        ("sandles", "sandels"),
        (
            F(
                "beach",
                "for the beach",
                "dries quickly after the beach or the pool",
                "للبحر",
                "يجف بسرعة بعد البحر أو المسبح",
            ),
            F(
                "orthopedic",
                "orthopedic",
                "has an orthopedic footbed that eases heel pain",
                "طبي",
                "بنعل طبي يخفف ألم الكعب",
            ),
        ),
        ("leather", "rubber"),
        ("جلد", "مطاط"),
        (60, 300),
    ),
    Kind(
        "leather_shoes",
        "fashion",
        "footwear",
        "Leather Shoes",
        ("formal shoes", "oxford shoes"),
        "حذاء جلد",
        ("جزمة جلد", "جزمة رسمية"),
        ("lether shoes", "leather shoos"),
        (
            F(
                "wedding",
                "for a wedding",
                "is polished to a shine for weddings and formal evenings",
                "للعرس",
                "لامع ومناسب للأعراس والمناسبات الرسمية",
            ),
            F(
                "non_slip",
                "non slip",
                "has a non-slip rubber sole for marble floors",
                "ما يزحلق",
                "بنعل مطاطي مانع للانزلاق على الرخام",
            ),
        ),
        ("full-grain leather", "suede"),
        ("جلد طبيعي", "شمواه"),
        (250, 900),
    ),
    Kind(
        "abaya",
        "fashion",
        "clothing",
        "Abaya",
        ("abayah", "cloak"),
        "عباية",
        ("عبايه", "عباة"),
        ("abya", "abayaa"),
        (
            F(
                "embroidered",
                "embroidered",
                "is finished with hand embroidery on the sleeves",
                "مطرزة",
                "مطرزة يدوياً على الأكمام",
            ),
            F(
                "travel",
                "that does not wrinkle for travel",
                "resists wrinkles, so it travels folded in a suitcase",
                "ما تتكسر للسفر",
                "قماشها لا يتجعد فتناسب السفر في الشنطة",
            ),
        ),
        ("crepe", "nida fabric"),
        ("كريب", "قماش ندى"),
        (200, 1200),
    ),
    Kind(
        "thobe",
        "fashion",
        "clothing",
        "Thobe",
        ("men's robe", "dishdasha"),
        "ثوب",
        ("ثوب رجالي", "دشداشة"),
        ("thob", "thoube"),
        (
            F(
                "summer",
                "for summer",
                "is cut from a light fabric that stays cool in the summer heat",
                "صيفي",
                "من قماش خفيف يبقى بارداً في حر الصيف",
            ),
            F(
                "winter",
                "for winter",
                "uses a heavier wool blend that keeps you warm in winter",
                "شتوي",
                "من خليط صوف ثقيل يدفئ في الشتاء",
            ),
        ),
        ("cotton", "polyester blend"),
        ("قطن", "بوليستر"),
        (150, 600),
    ),
    Kind(
        "dress",
        "fashion",
        "clothing",
        "Dress",
        ("evening dress", "gown"),
        "فستان",
        ("فستان سهرة", "فستان طويل"),
        ("dres", "dresss"),
        (
            F(
                "evening",
                "for a party",
                "suits evening parties and weddings",
                "للحفلات",
                "مناسب لحفلات المساء والأعراس",
            ),
            F(
                "maternity",
                "maternity",
                "has an adjustable waist that works through pregnancy",
                "للحوامل",
                "بخصر قابل للتعديل يناسب فترة الحمل",
            ),
        ),
        ("chiffon", "satin"),
        ("شيفون", "ساتان"),
        (180, 1500),
    ),
    Kind(
        "jacket",
        "fashion",
        "clothing",
        "Jacket",
        ("coat", "winter jacket"),
        "جاكيت",
        ("جاكيت شتوي", "معطف", "جكيت"),
        ("jaket", "jackit"),
        (
            F(
                "rain",
                "rainproof",
                "has a hood and a rainproof shell for wet days",
                "ضد المطر",
                "بقبعة وطبقة خارجية تصد المطر",
            ),
            F(
                "desert_camping",
                "for desert camping",
                "is warm enough for cold nights camping in the desert",
                "للكشتة",
                "دافئ بما يكفي لليالي البر الباردة والكشتات",
            ),
        ),
        ("nylon", "denim"),
        ("نايلون", "جينز"),
        (200, 900),
    ),
    Kind(
        "handbag",
        "fashion",
        "accessories",
        "Handbag",
        ("purse", "tote bag"),
        "حقيبة يد",
        ("شنطة يد", "شنطة"),
        ("hand bag", "handbg"),
        (
            F(
                "laptop",
                "that fits a laptop",
                "has a padded pocket that fits a 14-inch laptop",
                "تشيل لابتوب",
                "بجيب مبطن يتسع للابتوب مقاس ١٤ إنش",
            ),
            F(
                "crossbody",
                "crossbody",
                "comes with a long strap to wear it crossbody",
                "كروس",
                "مع حزام طويل لتلبسها بشكل كروس على الكتف",
            ),
        ),
        ("leather", "canvas"),
        ("جلد", "قماش كانفس"),
        (150, 1800),
    ),
    # --- electronics --------------------------------------------------------------------------
    Kind(
        "smartphone",
        "electronics",
        "phones",
        "Smartphone",
        ("mobile phone", "cell phone"),
        "هاتف ذكي",
        ("جوال", "موبايل", "تلفون"),
        ("smartphon", "smart phone"),
        (
            F(
                "night_camera",
                "with a good camera at night",
                "takes clear photos in low light with its night camera mode",
                "كاميرته قوية بالليل",
                "يلتقط صوراً واضحة في الإضاءة المنخفضة بوضع التصوير الليلي",
            ),
            F(
                "big_battery",
                "with a long battery life",
                "has a 6000 mAh battery that lasts two days",
                "بطاريته تطول",
                "ببطارية ٦٠٠٠ مللي أمبير تدوم يومين",
            ),
        ),
        ("aluminium frame",),
        ("إطار ألمنيوم",),
        (800, 5000),
    ),
    Kind(
        "phone_case",
        "electronics",
        "phones",
        "Phone Case",
        ("phone cover",),
        "كفر جوال",
        ("جراب جوال", "كفر"),
        ("phone cse", "fone case"),
        (
            F(
                "drop_proof",
                "shockproof",
                "is drop-tested from two metres and absorbs shocks",
                "ضد الصدمات",
                "مقاوم للصدمات ومختبر على السقوط من مترين",
            ),
            F(
                "magsafe",
                "magnetic",
                "has built-in magnets for magnetic chargers and car mounts",
                "مغناطيسي",
                "بمغناطيس مدمج للشواحن المغناطيسية وحامل السيارة",
            ),
        ),
        ("clear silicone", "leather"),
        ("سيليكون شفاف", "جلد"),
        (40, 200),
    ),
    Kind(
        "charger",
        "electronics",
        "phones",
        "Charger",
        ("wall charger", "charging adapter"),
        "شاحن",
        ("شاحن جوال", "راس شاحن"),
        ("chargr", "charjer"),
        (
            F(
                "fast",
                "fast charging",
                "charges a phone to half in about twenty minutes",
                "شحن سريع",
                "يشحن الجوال إلى النصف في حوالي عشرين دقيقة",
            ),
            F(
                "car",
                "for the car",
                "plugs into the car lighter socket",
                "للسيارة",
                "يركب في ولاعة السيارة",
            ),
        ),
        ("plastic", "braided cable"),
        ("بلاستيك", "كيبل مجدول"),
        (40, 250),
    ),
    Kind(
        "earbuds",
        "electronics",
        "audio",
        "Wireless Earbuds",
        ("bluetooth earbuds", "earphones"),
        "سماعات لاسلكية",
        ("سماعة بلوتوث", "ايربودز", "سماعات اذن"),
        ("earbds", "wireles earbuds"),
        (
            F(
                "noise_cancelling",
                "with noise cancelling",
                "cancels the noise of planes and traffic",
                "عازلة للصوت",
                "تعزل ضجيج الطائرة والشارع",
            ),
            F(
                "sport",
                "for the gym",
                "stay in place with ear hooks during workouts and runs",
                "للرياضة",
                "تثبت في الأذن أثناء التمارين والجري",
            ),
        ),
        ("matte plastic",),
        ("بلاستيك مطفي",),
        (100, 1000),
    ),
    Kind(
        "headphones",
        "electronics",
        "audio",
        "Headphones",
        ("over-ear headphones", "headset"),
        "سماعات رأس",
        ("هيدفون", "سماعة راس"),
        ("headphons", "hedphones"),
        (
            F(
                "noise_cancelling",
                "with noise cancelling",
                "blocks the hum of engines and offices with active noise cancelling",
                "عازلة للصوت",
                "تعزل أصوات المحركات والمكاتب بخاصية إلغاء الضوضاء",
            ),
            F(
                "gaming",
                "for gaming",
                "has a boom microphone for gaming and voice chat",
                "للألعاب",
                "بمايكروفون للألعاب والمحادثات الصوتية",
            ),
        ),
        ("memory foam cushions",),
        ("وسائد إسفنج",),
        (150, 1500),
    ),
    Kind(
        "speaker",
        "electronics",
        "audio",
        "Bluetooth Speaker",
        ("portable speaker", "wireless speaker"),
        "مكبر صوت",
        ("سبيكر", "سماعة بلوتوث كبيرة"),
        ("speker", "bluetooth speeker"),
        (
            F(
                "waterproof",
                "waterproof",
                "is waterproof and floats in the pool",
                "مقاوم للماء",
                "مقاوم للماء ويطفو في المسبح",
            ),
            F(
                "party",
                "loud for parties",
                "fills a majlis with loud, deep bass",
                "صوته عالي للحفلات",
                "صوته عالٍ مع باس عميق يملأ المجلس",
            ),
        ),
        ("fabric grille",),
        ("شبك قماش",),
        (120, 1200),
    ),
    Kind(
        "laptop",
        "electronics",
        "computing",
        "Laptop",
        ("notebook computer",),
        "لابتوب",
        ("كمبيوتر محمول", "لاب توب"),
        ("labtop", "laptob"),
        (
            F(
                "gaming",
                "for gaming",
                "runs new games smoothly on its dedicated graphics card",
                "للألعاب",
                "يشغل الألعاب الحديثة بسلاسة بكرت شاشة منفصل",
            ),
            F(
                "students",
                "light for university",
                "weighs just over a kilo, easy to carry to university",
                "خفيف للجامعة",
                "وزنه يزيد قليلاً عن كيلو وسهل الحمل للجامعة",
            ),
        ),
        ("aluminium",),
        ("ألمنيوم",),
        (1800, 8000),
    ),
    Kind(
        "smartwatch",
        "electronics",
        "computing",
        "Smartwatch",
        ("smart watch", "fitness watch"),
        "ساعة ذكية",
        ("ساعة رياضية", "سمارت واتش"),
        ("smartwach", "smart wtch"),
        (
            F(
                "swim",
                "for swimming",
                "tracks laps in the pool and is water resistant to 50 metres",
                "للسباحة",
                "تحسب السباحة في المسبح ومقاومة للماء حتى ٥٠ متر",
            ),
            F(
                "health",
                "that measures blood oxygen",
                "measures heart rate and blood oxygen around the clock",
                "تقيس الأكسجين",
                "تقيس نبض القلب ونسبة الأكسجين في الدم طوال اليوم",
            ),
        ),
        ("silicone strap", "metal strap"),
        ("سوار سيليكون", "سوار معدن"),
        (300, 2500),
    ),
    # --- perfume ------------------------------------------------------------------------------
    Kind(
        "eau_de_parfum",
        "perfume",
        "perfumes",
        "Eau de Parfum",
        ("perfume", "fragrance"),
        "عطر",
        ("عطر فرنسي", "برفان"),
        ("perfum", "parfume"),
        (
            F(
                "long_lasting",
                "long lasting",
                "lasts all day on skin and clothes",
                "ثابت",
                "ثابت طوال اليوم على الجلد والملابس",
            ),
            F(
                "office",
                "light for the office",
                "is soft and light, made for the office",
                "خفيف للدوام",
                "ناعم وخفيف مناسب للدوام",
            ),
        ),
        ("100 ml glass bottle",),
        ("زجاجة ١٠٠ مل",),
        (150, 1200),
    ),
    Kind(
        "body_mist",
        "perfume",
        "perfumes",
        "Body Mist",
        ("body spray",),
        "معطر جسم",
        ("بخاخ جسم", "سبلاش"),
        ("body mst", "bodymist"),
        (
            F(
                "after_shower",
                "after the shower",
                "is meant for a fresh spray straight after the shower",
                "بعد الشاور",
                "مناسب بعد الاستحمام مباشرة لإحساس بالانتعاش",
            ),
            F(
                "alcohol_free",
                "alcohol free",
                "is alcohol free and gentle on sensitive skin",
                "بدون كحول",
                "خالٍ من الكحول ولطيف على البشرة الحساسة",
            ),
        ),
        ("250 ml spray",),
        ("بخاخ ٢٥٠ مل",),
        (40, 200),
    ),
    Kind(
        "hair_mist",
        "perfume",
        "perfumes",
        "Hair Mist",
        ("hair perfume",),
        "عطر شعر",
        ("معطر شعر", "بخاخ شعر"),
        ("hair mst", "hiar mist"),
        (
            F(
                "alcohol_free",
                "alcohol free",
                "is alcohol free so it does not dry the hair",
                "بدون كحول",
                "خالٍ من الكحول فلا يجفف الشعر",
            ),
            F(
                "under_hijab",
                "under the hijab",
                "keeps hair smelling fresh under the hijab",
                "تحت الحجاب",
                "يحافظ على رائحة الشعر تحت الحجاب",
            ),
        ),
        ("50 ml spray",),
        ("بخاخ ٥٠ مل",),
        (60, 300),
    ),
    Kind(
        "gift_set",
        "perfume",
        "perfumes",
        "Perfume Gift Set",
        ("fragrance gift box",),
        "طقم عطور",
        ("بكج عطور", "هدية عطور"),
        ("perfume gift st", "gift sett"),
        (
            F(
                "wedding_gift",
                "as a wedding gift",
                "is wrapped as a wedding gift with a card",
                "هدية عرس",
                "مغلف كهدية للعروس أو العريس مع بطاقة",
            ),
            F(
                "travel_size",
                "travel size",
                "holds four travel-size bottles for the cabin bag",
                "حجم سفر",
                "يضم أربع عبوات بحجم السفر لشنطة الطائرة",
            ),
        ),
        ("gift box",),
        ("علبة هدية",),
        (200, 1500),
    ),
    Kind(
        "oud_oil",
        "perfume",
        "oriental",
        "Oud Oil",
        ("dehn al oud", "perfume oil"),
        "دهن عود",
        ("دهن العود", "دهن"),
        ("oud oyl", "ud oil"),
        (
            F(
                "cambodian",
                "cambodian",
                "is distilled from aged Cambodian agarwood",
                "كمبودي",
                "مقطر من خشب عود كمبودي معتق",
            ),
            F(
                "long_lasting",
                "long lasting",
                "lasts for days on clothes",
                "ثابت",
                "يثبت أياماً على الملابس",
            ),
        ),
        ("3 ml tola bottle",),
        ("تولة ٣ مل",),
        (150, 3000),
    ),
    Kind(
        "bakhoor",
        "perfume",
        "oriental",
        "Bakhoor",
        ("incense chips", "bukhoor"),
        "بخور",
        ("بخور معمول", "مبخر"),
        ("bakhor", "bukhor"),
        (
            F(
                "majlis",
                "for the majlis",
                "fills a large majlis with smoke that lingers",
                "للمجلس",
                "يعبق المجلس الكبير برائحة تدوم",
            ),
            F(
                "low_smoke",
                "low smoke",
                "burns with little smoke, kind to small rooms",
                "دخانه خفيف",
                "دخانه خفيف ومناسب للغرف الصغيرة",
            ),
        ),
        ("wooden box",),
        ("علبة خشب",),
        (50, 800),
    ),
    Kind(
        "musk",
        "perfume",
        "oriental",
        "White Musk",
        ("musk perfume", "musk"),
        "مسك",
        ("مسك أبيض", "مسك الطهارة"),
        ("msk", "muks"),
        (
            F(
                "tahara",
                "tahara musk",
                "is the classic tahara musk, safe for personal use",
                "مسك طهارة",
                "مسك الطهارة الكلاسيكي الآمن للاستخدام الشخصي",
            ),
            F(
                "solid",
                "solid",
                "comes as a solid cream in a small jar",
                "جامد",
                "يأتي كريماً جامداً في علبة صغيرة",
            ),
        ),
        ("12 ml bottle",),
        ("زجاجة ١٢ مل",),
        (30, 300),
    ),
    Kind(
        "incense_burner",
        "perfume",
        "oriental",
        "Incense Burner",
        ("mabkhara", "censer"),
        "مبخرة",
        ("مبخره", "مدخنة"),
        ("insence burner", "incence burner"),
        (
            F(
                "electric",
                "electric",
                "is electric and heats bakhoor without charcoal",
                "كهربائية",
                "كهربائية تسخن البخور بدون فحم",
            ),
            F(
                "portable",
                "rechargeable portable",
                "is rechargeable and small enough to carry",
                "متنقلة بالشحن",
                "تعمل بالشحن وصغيرة سهلة الحمل",
            ),
        ),
        ("brass", "ceramic"),
        ("نحاس", "سيراميك"),
        (60, 700),
    ),
    # --- groceries ----------------------------------------------------------------------------
    Kind(
        "dates",
        "groceries",
        "sweets",
        "Dates",
        ("tamr", "date fruit"),
        "تمر",
        ("تمور", "رطب"),
        ("dats", "dtaes"),
        (
            F(
                "stuffed",
                "stuffed with nuts",
                "are stuffed with almonds and pistachios",
                "محشي مكسرات",
                "محشوة باللوز والفستق",
            ),
            F(
                "diabetic",
                "low sugar",
                "are a lower-sugar variety suited to diabetics",
                "قليل السكر",
                "صنف قليل السكر مناسب لمرضى السكري",
            ),
        ),
        ("1 kg box",),
        ("علبة ١ كيلو",),
        (30, 250),
    ),
    Kind(
        "honey",
        "groceries",
        "sweets",
        "Honey",
        ("raw honey",),
        "عسل",
        ("عسل طبيعي", "عسل سدر"),
        ("hony", "honney"),
        (
            F(
                "sidr",
                "sidr",
                "is sidr honey from mountain valleys",
                "سدر",
                "عسل سدر من أودية الجبال",
            ),
            F(
                "raw",
                "raw unheated",
                "is raw and never heated, so it crystallises naturally",
                "خام غير مبستر",
                "خام غير مسخن فيتبلور بشكل طبيعي",
            ),
        ),
        ("500 g jar",),
        ("برطمان ٥٠٠ غرام",),
        (60, 600),
    ),
    Kind(
        "nuts",
        "groceries",
        "sweets",
        "Mixed Nuts",
        ("nuts",),
        "مكسرات",
        ("مكسرات مشكلة", "قلوبات"),
        ("mixd nuts", "nutts"),
        (
            F("unsalted", "unsalted", "are roasted without salt", "بدون ملح", "محمصة بدون ملح"),
            F(
                "raw",
                "raw",
                "are raw, neither roasted nor salted",
                "ني",
                "نيئة غير محمصة ولا مملحة",
            ),
        ),
        ("500 g bag",),
        ("كيس ٥٠٠ غرام",),
        (30, 200),
    ),
    Kind(
        "coffee",
        "groceries",
        "drinks",
        "Arabic Coffee",
        ("gahwa", "saudi coffee"),
        "قهوة عربية",
        ("قهوة", "قهوة سعودية", "بن"),
        ("arabic cofee", "arabic coffe"),
        (
            F(
                "cardamom",
                "with cardamom",
                "is ground with cardamom and saffron",
                "بالهيل",
                "مطحونة مع الهيل والزعفران",
            ),
            F(
                "light_roast",
                "light roast",
                "is a light, blond roast in the Najdi style",
                "شقراء",
                "محمصة تحميصاً خفيفاً شقراء على الطريقة النجدية",
            ),
        ),
        ("250 g pack",),
        ("كيس ٢٥٠ غرام",),
        (30, 200),
    ),
    Kind(
        "tea",
        "groceries",
        "drinks",
        "Tea",
        ("black tea", "loose tea"),
        "شاي",
        ("شاهي", "شاي أحمر"),
        ("tae", "teaa"),
        (
            F("green", "green", "is a green tea with a grassy taste", "أخضر", "شاي أخضر بطعم عشبي"),
            F(
                "mint",
                "with mint",
                "is blended with dried mint leaves",
                "بالنعناع",
                "ممزوج بأوراق النعناع المجففة",
            ),
        ),
        ("100 bags box",),
        ("علبة ١٠٠ كيس",),
        (15, 120),
    ),
    Kind(
        "rice",
        "groceries",
        "pantry",
        "Basmati Rice",
        ("long grain rice", "rice"),
        "رز بسمتي",
        ("رز", "عيش"),
        ("basmti rice", "rize"),
        (
            F(
                "kabsa",
                "for kabsa",
                "cooks into separate grains for kabsa and mandi",
                "للكبسة",
                "حباته تطلع مفلفلة للكبسة والمندي",
            ),
            F("brown", "brown", "is whole-grain brown rice", "أسمر", "رز أسمر بالحبة الكاملة"),
        ),
        ("5 kg bag",),
        ("كيس ٥ كيلو",),
        (30, 150),
    ),
    Kind(
        "olive_oil",
        "groceries",
        "pantry",
        "Olive Oil",
        ("extra virgin olive oil",),
        "زيت زيتون",
        ("زيت زيتون بكر", "زيت"),
        ("olive oyl", "olve oil"),
        (
            F(
                "cold_pressed",
                "cold pressed",
                "is cold pressed from the first harvest",
                "معصور على البارد",
                "معصور على البارد من أول قطفة",
            ),
            F(
                "frying",
                "for frying",
                "takes high heat for frying",
                "للقلي",
                "يتحمل الحرارة العالية للقلي",
            ),
        ),
        ("1 l bottle",),
        ("زجاجة ١ لتر",),
        (30, 180),
    ),
    Kind(
        "spices",
        "groceries",
        "pantry",
        "Spice Mix",
        ("seasoning", "baharat"),
        "بهارات",
        ("بهارات كبسة", "بزار"),
        ("spise mix", "spice mx"),
        (
            F(
                "kabsa",
                "for kabsa",
                "is blended for kabsa and mandi",
                "للكبسة",
                "خلطة خاصة للكبسة والمندي",
            ),
            F(
                "mild",
                "not spicy",
                "is mild, with no chilli, for children",
                "بدون حار",
                "معتدلة بدون فلفل حار مناسبة للأطفال",
            ),
        ),
        ("200 g jar",),
        ("علبة ٢٠٠ غرام",),
        (10, 80),
    ),
    # --- home ---------------------------------------------------------------------------------
    Kind(
        "cookware",
        "home",
        "kitchen",
        "Cookware Set",
        ("pots and pans", "pot set"),
        "طقم قدور",
        ("طقم حلل", "قدور"),
        ("cookwear set", "cookware sett"),
        (
            F(
                "induction",
                "for induction hobs",
                "works on induction hobs as well as gas",
                "للحرارة الحثية",
                "يعمل على طباخ الحث والغاز",
            ),
            F(
                "non_stick",
                "non stick",
                "has a granite non-stick coating",
                "غير لاصق",
                "بطلاء جرانيت غير لاصق",
            ),
        ),
        ("stainless steel", "cast aluminium"),
        ("ستانلس ستيل", "ألمنيوم مصبوب"),
        (200, 1500),
    ),
    Kind(
        "coffee_maker",
        "home",
        "kitchen",
        "Coffee Maker",
        ("coffee machine", "espresso machine"),
        "ماكينة قهوة",
        ("مكينة قهوة", "آلة قهوة"),
        ("cofee maker", "coffe machine"),
        (
            F(
                "arabic",
                "for arabic coffee",
                "brews Arabic coffee with cardamom in a built-in dallah",
                "للقهوة العربية",
                "تحضر القهوة العربية بالهيل في دلة مدمجة",
            ),
            F(
                "capsules",
                "capsule",
                "takes coffee capsules for a one-touch espresso",
                "كبسولات",
                "تعمل بالكبسولات لإسبريسو بلمسة واحدة",
            ),
        ),
        ("stainless steel",),
        ("ستانلس ستيل",),
        (250, 2500),
    ),
    Kind(
        "kettle",
        "home",
        "kitchen",
        "Electric Kettle",
        ("kettle", "water boiler"),
        "غلاية كهربائية",
        ("غلاية", "سخان ماء", "كتل"),
        ("electric ketle", "kettel"),
        (
            F(
                "temperature",
                "with temperature control",
                "lets you set the temperature for green tea",
                "بتحكم الحرارة",
                "تتيح ضبط درجة الحرارة للشاي الأخضر",
            ),
            F(
                "travel",
                "small for travel",
                "folds down small for travel",
                "صغيرة للسفر",
                "قابلة للطي وصغيرة للسفر",
            ),
        ),
        ("glass", "stainless steel"),
        ("زجاج", "ستانلس ستيل"),
        (60, 400),
    ),
    Kind(
        "rug",
        "home",
        "decor",
        "Rug",
        ("carpet", "area rug"),
        "سجادة",
        ("زولية", "موكيت"),
        ("rugg", "carpit"),
        (
            F(
                "washable",
                "machine washable",
                "goes in the washing machine",
                "تنغسل بالغسالة",
                "تنغسل في الغسالة",
            ),
            F(
                "kids",
                "for a kids room",
                "is soft and thick for a children's room",
                "لغرفة الأطفال",
                "ناعمة وسميكة مناسبة لغرفة الأطفال",
            ),
        ),
        ("wool", "polyester"),
        ("صوف", "بوليستر"),
        (150, 2000),
    ),
    Kind(
        "curtains",
        "home",
        "decor",
        "Curtains",
        ("drapes", "window curtains"),
        "ستائر",
        ("برادي", "ستارة"),
        ("curtians", "curtins"),
        (
            F(
                "blackout",
                "blackout",
                "blocks out the light completely for bedrooms",
                "تعتيم",
                "تحجب الضوء بالكامل لغرف النوم",
            ),
            F(
                "sheer",
                "sheer",
                "is sheer and lets the daylight through",
                "شفافة",
                "شفافة تسمح بدخول ضوء النهار",
            ),
        ),
        ("linen", "velvet"),
        ("كتان", "مخمل"),
        (100, 900),
    ),
    Kind(
        "cushion",
        "home",
        "decor",
        "Cushion",
        ("throw pillow",),
        "مخدة",
        ("كوشن", "وسادة"),
        ("cushon", "cusion"),
        (
            F(
                "majlis",
                "for the majlis floor seating",
                "is firm and long for floor seating in the majlis",
                "لجلسة أرضية",
                "قاسية وطويلة للجلسات الأرضية في المجلس",
            ),
            F(
                "outdoor",
                "outdoor",
                "is weatherproof for the garden and roof",
                "للحوش",
                "مقاومة للعوامل الجوية للحوش والسطح",
            ),
        ),
        ("velvet", "cotton"),
        ("مخمل", "قطن"),
        (40, 300),
    ),
    Kind(
        "bedding",
        "home",
        "decor",
        "Bed Sheet Set",
        ("bedding set", "sheets"),
        "طقم مفارش",
        ("شراشف", "مفرش سرير", "مفارش"),
        ("bed sheat set", "beding set"),
        (
            F("king", "king size", "fits a king-size bed", "مقاس كنق", "يناسب سرير مقاس كنق"),
            F(
                "cooling",
                "cooling for summer",
                "has a cooling weave that stays fresh on hot nights",
                "بارد للصيف",
                "بنسيج بارد يبقى منعشاً في ليالي الصيف",
            ),
        ),
        ("egyptian cotton", "microfiber"),
        ("قطن مصري", "مايكروفايبر"),
        (150, 1200),
    ),
    Kind(
        "lamp",
        "home",
        "decor",
        "Table Lamp",
        ("bedside lamp", "desk lamp"),
        "أباجورة",
        ("اباجوره", "لمبة مكتب", "ابجورة"),
        ("tabel lamp", "lampp"),
        (
            F(
                "dimmable",
                "dimmable",
                "dims with a touch for reading at night",
                "ضوءها يتدرج",
                "ضوؤها يتدرج باللمس للقراءة في الليل",
            ),
            F(
                "wireless_charging",
                "with wireless charging",
                "has a wireless charging pad for your phone in its base",
                "فيها شاحن لاسلكي",
                "في قاعدتها شاحن لاسلكي للجوال",
            ),
        ),
        ("brass", "wood"),
        ("نحاس", "خشب"),
        (80, 700),
    ),
)

# (key, English, Arabic, other Arabic spellings)
COLOURS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("black", "Black", "أسود", ("اسود",)),
    ("white", "White", "أبيض", ("ابيض",)),
    ("red", "Red", "أحمر", ("احمر",)),
    ("blue", "Blue", "أزرق", ("ازرق",)),
    ("navy", "Navy", "كحلي", ("كحلى",)),
    ("grey", "Grey", "رمادي", ("رمادى",)),
    ("beige", "Beige", "بيج", ("بيجي",)),
    ("green", "Green", "أخضر", ("اخضر",)),
    ("pink", "Pink", "وردي", ("زهري",)),
    ("brown", "Brown", "بني", ("بنى",)),
)
SCENTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("oud", "Oud", "عود", ("العود",)),
    ("rose", "Rose", "ورد", ("الورد",)),
    ("musk", "Musk", "مسك", ("المسك",)),
    ("vanilla", "Vanilla", "فانيلا", ("فانيليا",)),
    ("amber", "Amber", "عنبر", ("العنبر",)),
    ("citrus", "Citrus", "حمضيات", ("ليمون",)),
)
ORIGINS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("qassim", "Qassim", "القصيم", ("قصيمي",)),
    ("madinah", "Madinah", "المدينة", ("مديني",)),
    ("yemen", "Yemeni", "يمني", ("اليمن",)),
    ("india", "Indian", "هندي", ("الهند",)),
    ("spain", "Spanish", "إسباني", ("اسباني",)),
    ("ahsa", "Al-Ahsa", "الأحساء", ("حساوي",)),
)
BRANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "fashion": (
        ("Nike", "نايكي"),
        ("Adidas", "اديداس"),
        ("Zara", "زارا"),
        ("Hala", "هلا"),
        ("Mango", "مانجو"),
    ),
    "electronics": (
        ("Samsung", "سامسونج"),
        ("Apple", "ابل"),
        ("Anker", "انكر"),
        ("Huawei", "هواوي"),
        ("Xiaomi", "شاومي"),
    ),
    "perfume": (
        ("Arabian Oud", "العربية للعود"),
        ("Al Qurashi", "القرشي"),
        ("Ajmal", "أجمل"),
        ("Rasasi", "الرصاصي"),
        ("Lattafa", "لطافة"),
    ),
    "groceries": (
        ("Baraka", "بركة"),
        ("Al Ameed", "العميد"),
        ("Nakheel", "النخيل"),
        ("Al Shifa", "الشفاء"),
        ("Tamimi", "التميمي"),
    ),
    "home": (
        ("IKEA", "ايكيا"),
        ("Tefal", "تيفال"),
        ("Philips", "فيليبس"),
        ("Home Centre", "هوم سنتر"),
        ("Delonghi", "ديلونجي"),
    ),
}
CATEGORIES: dict[str, tuple[str, str]] = {
    "footwear": ("Shoes", "أحذية"),
    "clothing": ("Clothing", "ملابس"),
    "accessories": ("Bags", "حقائب"),
    "phones": ("Phones & accessories", "جوالات وإكسسوارات"),
    "audio": ("Audio", "صوتيات"),
    "computing": ("Computers & wearables", "كمبيوتر وأجهزة ذكية"),
    "perfumes": ("Perfumes", "عطور"),
    "oriental": ("Oud & bakhoor", "عود وبخور"),
    "sweets": ("Dates, honey & nuts", "تمور وعسل ومكسرات"),
    "drinks": ("Coffee & tea", "قهوة وشاي"),
    "pantry": ("Pantry", "مؤونة"),
    "kitchen": ("Kitchen", "مطبخ"),
    "decor": ("Home decor", "ديكور"),
}
MODELS = ("Classic", "Pro", "Lite", "Max", "Plus", "Air", "Royal", "Prime", "Nova", "Elite")
STORE_FILLER: dict[str, tuple[tuple[str, str], ...]] = {
    "fashion": (
        ("Machine wash cold and dry in the shade.", "يغسل بماء بارد ويجفف في الظل."),
        (
            "Sizes run true; check the size chart before ordering.",
            "المقاسات مطابقة، راجع جدول المقاسات قبل الطلب.",
        ),
        ("Designed in Riyadh for everyday comfort.", "مصمم في الرياض لراحة يومية."),
    ),
    "electronics": (
        ("Includes a two-year warranty.", "يشمل ضمان سنتين."),
        ("Works with iPhone and Android devices.", "يعمل مع أجهزة آيفون وأندرويد."),
        ("Ships in sealed original packaging.", "يُشحن في علبته الأصلية المغلقة."),
    ),
    "perfume": (
        ("Store away from heat and direct sunlight.", "يحفظ بعيداً عن الحرارة وأشعة الشمس."),
        ("A favourite gift for Eid.", "هدية مفضلة في العيد."),
        ("Blended in small batches.", "يُركّب بكميات صغيرة."),
    ),
    "groceries": (
        ("Store in a cool, dry place.", "يحفظ في مكان بارد وجاف."),
        ("Packed fresh every week.", "يعبأ طازجاً كل أسبوع."),
        ("No artificial colours or preservatives.", "بدون ألوان أو مواد حافظة صناعية."),
    ),
    "home": (
        ("Assembly takes a few minutes with no tools.", "التركيب يستغرق دقائق بدون أدوات."),
        ("Wipe clean with a damp cloth.", "ينظف بقطعة قماش رطبة."),
        ("Backed by a one-year warranty.", "مع ضمان سنة."),
    ),
}


def _attribute_table(kind: Kind) -> tuple[str, tuple[tuple[str, str, str, tuple[str, ...]], ...]]:
    """The worded attribute a product of ``kind`` varies on (what a shopper names besides type)."""
    if kind.store == "perfume" and kind.key != "incense_burner":
        return "scent", SCENTS
    if kind.store == "groceries" and kind.key in ("dates", "honey", "coffee", "rice", "olive_oil"):
        return "origin", ORIGINS
    if kind.store == "groceries":
        return "", ()
    return "color", COLOURS


@dataclass(frozen=True, slots=True)
class Made:
    sku: str
    kind: Kind
    brand: tuple[str, str]
    attr_name: str
    attr: tuple[str, str, str, tuple[str, ...]] | None
    feature: Feature | None
    lang: str
    row: dict[str, Any]


def _describe(
    rnd: random.Random,
    kind: Kind,
    lang: str,
    brand: str,
    attr_word: str | None,
    attr_name: str,
    material: str,
    feature: Feature | None,
    other: Kind,
) -> str:
    ar = lang == "ar"
    name = kind.ar if ar else kind.en.lower()
    sentences: list[str] = []
    if ar:
        colour = f" باللون {attr_word}" if attr_name == "color" and attr_word else ""
        scent = f" برائحة {attr_word}" if attr_name == "scent" and attr_word else ""
        origin = f" {attr_word}" if attr_name == "origin" and attr_word else ""
        made_of = f"، {material}" if material else ""
        sentences.append(f"{name}{origin} من {brand}{colour}{scent}{made_of}.")
    else:
        colour = f" in {attr_word.lower()}" if attr_name == "color" and attr_word else ""
        scent = f" with {attr_word.lower()} notes" if attr_name == "scent" and attr_word else ""
        origin = f"{attr_word} " if attr_name == "origin" and attr_word else ""
        packed = kind.store in ("groceries", "perfume")
        made_of = (f", {material}" if packed else f", made of {material}") if material else ""
        sentences.append(f"{origin}{kind.en} by {brand}{colour}{scent}{made_of}.")
    if feature is not None:
        sentences.append(f"هذا المنتج {feature.ar_d}." if ar else f"It {feature.en_d}.")
    filler = list(STORE_FILLER[kind.store])
    rnd.shuffle(filler)
    for en, arab in filler[: rnd.randint(1, 3)]:
        sentences.append(arab if ar else en)
    if rnd.random() < 0.35:  # cross-selling lines: realistic noise for the lexical signal
        sentences.append(
            f"يتناسق مع {other.ar} من نفس المجموعة."
            if ar
            else f"Pairs well with our {other.en.lower()} from the same collection."
        )
    return " ".join(sentences[:5])


def make_products(rnd: random.Random, per_kind: int = 13) -> list[Made]:
    out: list[Made] = []
    for kind in KINDS:
        attr_name, table = _attribute_table(kind)
        siblings = [k for k in KINDS if k.store == kind.store and k.key != kind.key]
        for n in range(per_kind):
            sku = f"{kind.key.upper().replace('_', '-')[:10]}-{n + 1:03d}"
            brand = rnd.choice(BRANDS[kind.store])
            attr = rnd.choice(table) if table else None
            # About two thirds state one feature; the rest state none (grade 2 for a feature query).
            roll = rnd.random()
            feature = kind.features[0] if roll < 0.33 else kind.features[1] if roll < 0.66 else None
            lang = "ar" if rnd.random() < 0.5 else "en"
            model = rnd.choice(MODELS)
            mi = rnd.randrange(len(kind.material_en)) if kind.material_en else -1
            material = (
                (kind.material_ar[mi] if lang == "ar" else kind.material_en[mi]) if mi >= 0 else ""
            )
            attr_word = None if attr is None else (attr[2] if lang == "ar" else attr[1])
            if lang == "ar":
                title = f"{kind.ar} {brand[1]} {model}" + (f" - {attr_word}" if attr_word else "")
            else:
                title = f"{brand[0]} {model} {kind.en}" + (f" – {attr_word}" if attr_word else "")
            desc = _describe(
                rnd,
                kind,
                lang,
                brand[1] if lang == "ar" else brand[0],
                attr_word,
                attr_name,
                material,
                feature,
                rnd.choice(siblings),
            )
            lo, hi = kind.price
            attributes: dict[str, Any] = {"brand": brand[1] if lang == "ar" else brand[0]}
            if attr is not None:
                attributes[attr_name] = attr_word
            if material:
                attributes["material"] = material
            row = {
                "sku": sku,
                "title": title,
                "description": desc,
                "price": float(rnd.randrange(lo, hi, 5)),
                "currency": "SAR",
                "category": " / ".join(CATEGORIES[kind.group]),
                "in_stock": rnd.random() < 0.85,
                "attributes": attributes,
            }
            out.append(Made(sku, kind, brand, attr_name, attr, feature, lang, row))
    return out


# --- queries -----------------------------------------------------------------------------------

STYLES = ("short_en", "long_en", "gulf_ar", "mixed", "misspelled")
GULF_OPENERS = ("ابي", "ابغى", "عندكم", "ودي", "وش عندكم من", "تكفون ابي", "فيه")
EN_OPENERS = (
    "I'm looking for",
    "Do you have",
    "Can you recommend",
    "I need",
    "Show me",
    "I want to buy",
)


def _typo(word: str, rnd: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rnd.randrange(1, len(word) - 1)
    op = rnd.randrange(3)
    if op == 0:  # drop a letter
        return word[:i] + word[i + 1 :]
    if op == 1:  # swap two
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double one


@dataclass(frozen=True, slots=True)
class Ask:
    kind: Kind
    attr: str | None  # attribute key (colour / scent / origin) the query names
    brand: str | None  # English brand name
    feature: str | None


def grade(ask: Ask, made: Made) -> int:
    if made.kind.key != ask.kind.key:
        return 1 if made.kind.group == ask.kind.group else 0
    if ask.attr is not None and (made.attr is None or made.attr[0] != ask.attr):
        return 2
    if ask.brand is not None and made.brand[0] != ask.brand:
        return 2
    if ask.feature is not None and (made.feature is None or made.feature.key != ask.feature):
        return 2
    return 3


def _query_text(rnd: random.Random, style: str, target: Made, ask: Ask) -> str:
    kind = target.kind
    attr = target.attr if ask.attr else None
    feature = target.feature if ask.feature else None
    brand = target.brand if ask.brand else None
    if style in ("short_en", "misspelled"):
        name = (
            rnd.choice((kind.en.lower(), *kind.en_alt))
            if style == "short_en"
            else rnd.choice(kind.typos)
        )
        words = [attr[1].lower() if attr else "", brand[0] if brand else "", name]
        if feature:
            words.append(feature.en_q)
        text = " ".join(w for w in words if w)
        if style == "misspelled":
            parts = text.split()
            j = rnd.randrange(len(parts))
            if parts[j] not in name.split():
                parts[j] = _typo(parts[j], rnd)
            text = " ".join(parts)
        return text
    if style == "long_en":
        opener = rnd.choice(EN_OPENERS)
        name = rnd.choice((kind.en.lower(), *kind.en_alt))
        bits = [f"{opener} a {attr[1].lower()} {name}" if attr else f"{opener} a {name}"]
        if feature:
            single = " " not in feature.en_q
            bits.append(
                f"that is {feature.en_q}" if single and rnd.random() < 0.5 else feature.en_q
            )
        if brand:
            bits.append(f"preferably from {brand[0]}")
        tail = rnd.choice(("", " for my brother", " as a gift", " for daily use", " please"))
        return " ".join(bits) + tail
    if style == "gulf_ar":
        opener = rnd.choice(GULF_OPENERS)
        name = rnd.choice((kind.ar, *kind.ar_alt))
        words = [opener, name]
        if attr:
            words.append(rnd.choice((attr[2], *attr[3])))
        if brand:
            words.append(f"من {brand[1]}")
        if feature:
            words.append(feature.ar_q)
        return " ".join(words)
    # mixed Arabic/English: an Arabic frame around English names, or the reverse
    opener = rnd.choice(GULF_OPENERS)
    if rnd.random() < 0.5:
        words = [opener, kind.en.lower()]
        if attr:
            words.append(attr[2])
        if brand:
            words.append(brand[0])
        if feature:
            words.append(feature.ar_q)
    else:
        words = [opener, rnd.choice((kind.ar, *kind.ar_alt))]
        if attr:
            words.append(attr[1].lower())
        if brand:
            words.append(brand[0])
        if feature:
            words.append(feature.en_q)
    return " ".join(words)


def make_queries(rnd: random.Random, products: list[Made], n: int = 260) -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(queries) < n and attempts < n * 20:
        attempts += 1
        style = STYLES[len(queries) % len(STYLES)]
        target = rnd.choice(products)
        # Which facts the query names: a feature (description-only) about half the time.
        use_feature = target.feature is not None and rnd.random() < 0.5
        use_attr = target.attr is not None and (not use_feature or rnd.random() < 0.4)
        use_brand = rnd.random() < (0.15 if use_feature or use_attr else 0.6)
        ask = Ask(
            target.kind,
            target.attr[0] if use_attr and target.attr else None,
            target.brand[0] if use_brand else None,
            target.feature.key if use_feature and target.feature else None,
        )
        text = _query_text(rnd, style, target, ask)
        if text in seen:
            continue
        seen.add(text)
        grades = {m.sku: g for m in products if (g := grade(ask, m)) > 0}
        qid = f"pq{len(queries) + 1:03d}"
        digest = int(hashlib.blake2b(qid.encode(), digest_size=2).hexdigest(), 16)
        queries.append(
            {
                "id": qid,
                "text": text,
                "style": style,
                "lang": "en" if style in ("short_en", "long_en", "misspelled") else "ar",
                "split": "test" if digest % 2 else "train",
                "asks": {
                    "type": ask.kind.key,
                    **({"attribute": ask.attr} if ask.attr else {}),
                    **({"brand": ask.brand} if ask.brand else {}),
                    **({"feature": ask.feature} if ask.feature else {}),
                },
                "grades": dict(sorted(grades.items(), key=lambda kv: (-kv[1], kv[0]))),
            }
        )
    return queries


def generate(out: Path) -> dict[str, int]:
    rnd = random.Random(SEED)
    products = make_products(rnd)
    queries = make_queries(rnd, products)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "products.jsonl").open("w", encoding="utf-8") as fh:
        for m in products:
            fh.write(json.dumps(m.row, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    return {
        "products": len(products),
        "queries": len(queries),
        "train": sum(q["split"] == "train" for q in queries),
        "test": sum(q["split"] == "test" for q in queries),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", default=str(Path(__file__).parent / "data" / "products"))
    print(json.dumps(generate(Path(ap.parse_args().out))))


if __name__ == "__main__":
    main()
