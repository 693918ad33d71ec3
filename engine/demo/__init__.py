"""The bilingual demo store ("Kaleem Demo Store" / "متجر كليم") shipped as package data.

It seeds the playground and the end-to-end tests with realistic Arabic and English products
and policies, so the bot can be tried without a merchant import. Files are read when the
functions are called, never at import (invariant: no I/O at import), through
``importlib.resources`` so they work from a wheel or a zip as well as from a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

DEMO_STORE_NAME_EN: Final = "Kaleem Demo Store"
DEMO_STORE_NAME_AR: Final = "متجر كليم"
DEMO_CURRENCY: Final = "SAR"
DEMO_CONTENT_TYPE: Final = "application/x-ndjson"


def demo_store_name(language: str) -> str:
    """The store name in the customer's language ("ar" or anything else for English)."""
    return DEMO_STORE_NAME_AR if language == "ar" else DEMO_STORE_NAME_EN


def demo_catalog_bytes() -> bytes:
    """The demo catalogue as JSON lines (parse with ``engine.domain.catalog.parse_products``)."""
    return files(__name__).joinpath("catalog.jsonl").read_bytes()


def demo_knowledge_bytes() -> bytes:
    """The demo policies as JSON lines (parse with ``engine.domain.catalog.parse_knowledge``)."""
    return files(__name__).joinpath("knowledge.jsonl").read_bytes()
