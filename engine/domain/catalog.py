"""Parsing of merchant catalogue and knowledge imports (admin API uploads).

Design choices, and why:

* **Partial success.** A 5,000-row export with three bad rows should import 4,997 products
  and tell the merchant exactly which lines to fix, not fail as a whole. Every bad row
  becomes a :class:`RowError` with its 1-based line number in the uploaded file (for CSV
  the header is line 1; a quoted field spanning lines reports the line where its record
  starts). Only problems with the *file* (undecodable bytes, unsupported content type,
  a CSV without the required columns) raise :class:`ImportFormatError`.
* **Duplicate keys inside one file: the last row wins, silently.** Exports are often
  concatenations or re-exports with corrections appended; "last write wins" matches what
  an upsert of the rows in order would do, so nothing is reported for it.
* **Strict on what reaches customers.** URLs must be absolute http(s) (no ``javascript:``
  links in a chat bubble), currencies are ISO-4217-shaped, prices are finite and
  non-negative, and every text field has a length bound (invariant: bounded everything).
* **Forgiving on notation.** Prices may be strings with Arabic-Indic digits and thousands
  separators ("١٬٢٩٩٫٥٠"), booleans may be "yes"/"0"/"true", files may carry a UTF-8 BOM.

Pure functions over bytes: no I/O, no database; the API layer stores the results.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

from engine.domain.messages import ProductCard
from engine.domain.text import normalize_digits

MAX_SKU_CHARS: Final = 128
MAX_ID_CHARS: Final = 128
MAX_TITLE_CHARS: Final = 300
MAX_DESCRIPTION_CHARS: Final = 10_000
MAX_CATEGORY_CHARS: Final = 200
MAX_URL_CHARS: Final = 2_048
MAX_ATTRIBUTES: Final = 50
MAX_ATTRIBUTE_VALUE_CHARS: Final = 500
MAX_KNOWLEDGE_BODY_CHARS: Final = 100_000
MAX_ROWS: Final = 50_000
# The two kinds of catalogue record (each a collection of records and of vectors).
PRODUCTS: Final = "products"
KNOWLEDGE: Final = "knowledge"
# 0 = the product's first vector reads title and worded attributes only, so a catalogue is
# searchable at the encoder's short-text speed. Measured (bench/index.py, quiet 2-core box,
# e5): 400 chars 22 products/s, 120 chars 57/s, 0 chars 163/s.
EMBEDDING_DESCRIPTION_CHARS: Final = 0
# The second vector's share of the description (see Product.description_embedding_text).
# Measured on the product relevance set (kaleem eval retrieval --kind products, weights tuned on
# train for each; test nDCG@10): 80 chars 0.626, 100 0.628, 150 0.626, 300 0.626. Encoder
# speed on bench/index.py's bilingual texts (2 threads): 0 chars 156/s, 80 52/s, 100 26/s,
# 150 17/s: 80 reads the sentence that usually states what the product does, at a third of
# the title-only rate.
DESCRIPTION_VECTOR_CHARS: Final = 80
# Vector id suffix of a product's description vector: ``{sku}#d``.
DESCRIPTION_VECTOR: Final = "#d"

JSONL_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json"}
)
CSV_TYPES: Final = frozenset({"text/csv", "application/csv"})

T = TypeVar("T")


class ImportFormatError(ValueError):
    """The upload as a whole cannot be read (maps to HTTP 400/415, nothing is stored)."""


class UnsupportedContentType(ImportFormatError):
    """Neither JSON lines nor CSV (maps to HTTP 415)."""


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ParseResult(Generic[T]):
    """Good rows (deduplicated, last wins) plus one error per rejected row."""

    rows: list[T]
    errors: list[RowError]


class _RowInvalid(Exception):
    """Internal: a row failed validation; the message is shown to the merchant."""


# --- domain records -------------------------------------------------------------------------


def product_doc_id(merchant_id: str, sku: str) -> str:
    """Record/vector id of a product: unique per merchant, stable across re-imports."""
    return f"{merchant_id}:{sku}"


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    title: str
    description: str = ""
    price: float | None = None
    currency: str | None = None
    category: str | None = None
    url: str | None = None
    image_url: str | None = None
    in_stock: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_doc(self, merchant_id: str) -> dict[str, Any]:
        """The MongoDB record; ``_id`` is ours (see :func:`product_doc_id`)."""
        return {
            "_id": product_doc_id(merchant_id, self.sku),
            "merchant_id": merchant_id,
            "sku": self.sku,
            "title": self.title,
            "description": self.description,
            "price": self.price,
            "currency": self.currency,
            "category": self.category,
            "url": self.url,
            "image_url": self.image_url,
            "in_stock": self.in_stock,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Product:
        price = doc.get("price")
        return cls(
            sku=str(doc["sku"]),
            title=str(doc.get("title") or ""),
            description=str(doc.get("description") or ""),
            price=None if price is None else float(price),
            currency=doc.get("currency"),
            category=doc.get("category"),
            url=doc.get("url"),
            image_url=doc.get("image_url"),
            in_stock=bool(doc.get("in_stock", True)),
            attributes=dict(doc.get("attributes") or {}),
        )

    def to_card(self) -> ProductCard:
        return ProductCard(
            sku=self.sku,
            title=self.title,
            price=self.price,
            currency=self.currency,
            url=self.url,
            image_url=self.image_url,
        )

    def embedding_text(self) -> str:
        """What the embedder sees: the product's name and its worded attributes (colour,
        material), nothing the lexical half already covers.

        Encoder time grows with tokens and a catalogue import embeds every product, so the
        dense text is kept to what only meaning can match: the title (survives truncation,
        carries the product's kind) and worded attributes. The category, the description
        (``EMBEDDING_DESCRIPTION_CHARS``) and numeric attributes are read by BM25
        (:func:`engine.services.retrieval.lexical_text`). Measured (bench/index.py --engine, 10,000
        products, e5): title+category+all attributes 113 products/s, this text ~200; the store
        evaluation keeps product hit@3 1.00 with it.
        """
        parts = [self.title]
        if self.description and EMBEDDING_DESCRIPTION_CHARS > 0:
            parts.append(_cut_words(self.description, EMBEDDING_DESCRIPTION_CHARS))
        attrs = [f"{k}: {text}" for k, v in self.attributes.items() if (text := _attr_words(v))]
        if attrs:
            parts.append("; ".join(attrs[:8]))
        return "\n".join(p for p in parts if p)

    def description_embedding_text(self) -> str:
        """The second vector: :meth:`embedding_text` plus the opening of the description.

        What a product *says* (waterproof, for flat feet, sugar-free) is rarely in its title.
        Embedded after the title vectors of an import (engine.services.indexing), so a catalogue
        is searchable at short-text speed and its descriptions join the dense signal shortly
        after. "" when there is no description (the first vector already says everything).
        """
        if not self.description.strip():
            return ""
        base = self.embedding_text()
        cut = _cut_words(self.description, DESCRIPTION_VECTOR_CHARS)
        head, _, attrs = base.partition("\n")
        return "\n".join(p for p in (head, cut, attrs) if p)


def product_vector_ids(sku: str) -> list[str]:
    """Every vector id a product may own (for deletes)."""
    return [sku, f"{sku}{DESCRIPTION_VECTOR}"]


def _attr_words(value: Any) -> str:
    """The words of an attribute value; "" for numbers and lists of numbers.

    Sizes, weights and counts ("sizes: 40, 41, 42") are hard filters and lexical matches, not
    meaning; left out of the dense text they cost no encoder time (about a quarter of a
    typical product's tokens) and the store evaluation holds.
    """
    items = value[:10] if isinstance(value, list) else [value]
    words = [
        str(v)
        for v in items
        if isinstance(v, str) and any(ch.isalpha() for ch in v) and not isinstance(v, bool)
    ]
    return ", ".join(words)


def _cut_words(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


@dataclass(frozen=True, slots=True)
class KnowledgeDoc:
    """A merchant policy/FAQ document. ``language`` ("ar"/"en") is optional metadata."""

    id: str
    title: str
    body: str
    language: str | None = None

    def to_doc(self, merchant_id: str) -> dict[str, Any]:
        return {
            "_id": f"{merchant_id}:{self.id}",
            "merchant_id": merchant_id,
            "doc_id": self.id,
            "title": self.title,
            "body": self.body,
            "language": self.language,
        }


@dataclass(frozen=True, slots=True)
class KnowledgeChunk:
    """A retrievable piece of a :class:`KnowledgeDoc`; ``id`` is ``"{doc_id}#{n}"``."""

    id: str
    doc_id: str
    title: str
    text: str

    def embedding_text(self) -> str:
        """Title + text: the title names the topic that the chunk's sentences may omit."""
        return f"{self.title}\n{self.text}"

    def window_texts(self) -> list[str]:
        """What the embedder sees: title + one :func:`text_windows` window each.

        A chunk is sized for quoting (conditions next to their numbers); a vector of a whole
        chunk blurs its sentences together. One vector per ~40-word window, scored as the best
        window of the chunk, measured on ARCD train: nDCG@10 0.899 -> 0.901 (test 0.894 ->
        0.905) with the same fusion weights.
        """
        return [f"{self.title}\n{w}" if self.title else w for w in text_windows(self.text)]


# --- field validation -------------------------------------------------------------------------


def _opt_str(value: Any, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RowInvalid(f"{name} must be a string")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > limit:
        raise _RowInvalid(f"{name} is longer than {limit} characters")
    return text


def _req_str(value: Any, name: str, limit: int) -> str:
    if isinstance(value, float):  # 12.0 as an id is a spreadsheet accident, not an id
        raise _RowInvalid(f"{name} must be a string")
    text = _opt_str(value, name, limit)
    if text is None:
        raise _RowInvalid(f"{name} is required")
    return text


_NUMBER_RE: Final = re.compile(r"\d+(?:\.\d+)?|\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _price(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _RowInvalid("price must be a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = normalize_digits(value).strip()
        if not text:
            return None
        if not _NUMBER_RE.fullmatch(text):
            raise _RowInvalid(f"price {value!r} is not a number")
        number = float(text.replace(",", ""))
    else:
        raise _RowInvalid("price must be a number")
    if not math.isfinite(number) or number < 0:
        raise _RowInvalid("price must be a finite number >= 0")
    return number


_CURRENCY_RE: Final = re.compile(r"[A-Za-z]{3}")


def _currency(value: Any) -> str | None:
    text = _opt_str(value, "currency", 16)
    if text is None:
        return None
    if not _CURRENCY_RE.fullmatch(text):
        raise _RowInvalid(f"currency {text!r} must be a 3-letter code like SAR")
    return text.upper()


def _url(value: Any, name: str) -> str | None:
    text = _opt_str(value, name, MAX_URL_CHARS)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or " " in text:
        raise _RowInvalid(f"{name} must be an absolute http(s) URL")
    return text


_TRUE: Final = frozenset({"true", "1", "yes", "y", "t", "نعم"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f", "لا"})


def _bool(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return default
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _RowInvalid(f"{name} must be true/false")


def _attributes(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _RowInvalid(f"attributes is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise _RowInvalid("attributes must be a JSON object")
    if len(value) > MAX_ATTRIBUTES:
        raise _RowInvalid(f"attributes has more than {MAX_ATTRIBUTES} keys")
    for key, item in value.items():
        if (
            len(key) > MAX_ATTRIBUTE_VALUE_CHARS
            or len(json.dumps(item)) > MAX_ATTRIBUTE_VALUE_CHARS
        ):
            raise _RowInvalid(f"attribute {key[:40]!r} is too long")
    return dict(value)


_PRODUCT_FIELDS: Final = frozenset(
    {
        "sku",
        "title",
        "description",
        "price",
        "currency",
        "category",
        "url",
        "image_url",
        "in_stock",
        "attributes",
    }
)


def product_from_mapping(row: Mapping[str, Any]) -> Product:
    """Validate one product row (JSON object or CSV record); raises ``ValueError`` if bad."""
    try:
        return _product(row)
    except _RowInvalid as exc:
        raise ValueError(str(exc)) from None


def _product(row: Mapping[str, Any]) -> Product:
    return Product(
        sku=_req_str(row.get("sku"), "sku", MAX_SKU_CHARS),
        title=_req_str(row.get("title"), "title", MAX_TITLE_CHARS),
        description=_opt_str(row.get("description"), "description", MAX_DESCRIPTION_CHARS) or "",
        price=_price(row.get("price")),
        currency=_currency(row.get("currency")),
        category=_opt_str(row.get("category"), "category", MAX_CATEGORY_CHARS),
        url=_url(row.get("url"), "url"),
        image_url=_url(row.get("image_url"), "image_url"),
        in_stock=_bool(row.get("in_stock"), "in_stock", default=True),
        attributes=_attributes(row.get("attributes")),
    )


def _knowledge(row: Mapping[str, Any]) -> KnowledgeDoc:
    language = _opt_str(row.get("language") or row.get("lang"), "language", 8)
    return KnowledgeDoc(
        id=_req_str(row.get("id"), "id", MAX_ID_CHARS),
        title=_req_str(row.get("title"), "title", MAX_TITLE_CHARS),
        body=_req_str(row.get("body"), "body", MAX_KNOWLEDGE_BODY_CHARS),
        language=language.lower() if language else None,
    )


# --- file readers -----------------------------------------------------------------------------


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"file is not valid UTF-8 (byte {exc.start})") from None


def _json_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """Yield (line, object-or-error-message). A whole-file JSON array is accepted too,
    in which case "line" is the 1-based position of the element in the array."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):  # nesting deeper than a catalogue
            items = None
        if isinstance(items, list):
            for index, item in enumerate(items, start=1):
                yield index, item if isinstance(item, dict) else "row must be a JSON object"
            return
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, f"invalid JSON: {exc.msg}"
            continue
        except RecursionError:  # "[[[[..." a million deep: a bad row, not a crash
            yield line_no, "invalid JSON: nested too deeply"
            continue
        yield line_no, obj if isinstance(obj, dict) else "row must be a JSON object"


def _csv_rows(
    text: str, required: tuple[str, ...], known: frozenset[str]
) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """Yield (line of the record's first physical line, row-or-error-message).

    Unknown columns are folded into ``attributes`` (spreadsheet exports put colour and size
    in their own columns); an explicit ``attributes`` JSON column overrides them per key.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFormatError("CSV file is empty") from None
    except csv.Error as exc:
        raise ImportFormatError(f"CSV header cannot be read: {exc}") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in columns]
    if missing:
        raise ImportFormatError(f"CSV header is missing required column(s): {', '.join(missing)}")
    prev_line = reader.line_num
    while True:
        start = prev_line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"malformed CSV: {exc}"
            return
        prev_line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) > len(columns):
            yield start, f"row has {len(record)} fields but the header has {len(columns)}"
            continue
        row: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, cell in zip(columns, record, strict=False):
            if name in known:
                row[name] = cell
            elif name and cell.strip():
                extra[name] = cell.strip()
        if extra:
            row["_extra"] = extra
        yield start, row


class _Collector(Generic[T]):
    """Rows in, the upload's good rows and bad lines out: one place for the row rules (the row
    limit, last-one-wins duplicates, errors by line) whether a file is read whole or streamed."""

    def __init__(
        self, build: Callable[[Mapping[str, Any]], T], key: Callable[[T], str], max_rows: int
    ) -> None:
        self._build = build
        self._key = key
        self._max = max_rows
        self._count = 0
        self.good: dict[str, T] = {}
        self.errors: list[RowError] = []
        self.full = False

    def add(self, line: int, row: Mapping[str, Any] | str) -> None:
        if self.full:
            return
        self._count += 1
        if self._count > self._max:
            self.errors.append(
                RowError(line, f"too many rows: the limit is {self._max} per upload")
            )
            self.full = True
            return
        if isinstance(row, str):
            self.errors.append(RowError(line, row))
            return
        try:
            item = self._build(row)
        except _RowInvalid as exc:
            self.errors.append(RowError(line, str(exc)))
            return
        self.good.pop(self._key(item), None)  # last one wins, and takes the last position
        self.good[self._key(item)] = item

    def result(self) -> ParseResult[T]:
        return ParseResult(rows=list(self.good.values()), errors=self.errors)


def _parse(
    data: bytes,
    content_type: str,
    build: Callable[[Mapping[str, Any]], T],
    key: Callable[[T], str],
    required: tuple[str, ...],
    known: frozenset[str],
    max_rows: int,
) -> ParseResult[T]:
    media = _media_type(content_type)
    text = _decode(data)
    if media in JSONL_TYPES:
        rows = _json_rows(text)
    elif media in CSV_TYPES:
        rows = _csv_rows(text, required, known)
    else:
        raise UnsupportedContentType(
            f"unsupported content type {media!r}; use text/csv or application/x-ndjson"
        )
    out = _Collector(build, key, max_rows)
    for line, row in rows:
        out.add(line, row)
        if out.full:
            break
    return out.result()


_BOM: Final = b"\xef\xbb\xbf"


def _json_row(line: bytes) -> Mapping[str, Any] | str:
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return "line is not valid UTF-8"
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg}"
    except RecursionError:
        return "invalid JSON: nested too deeply"
    return obj if isinstance(obj, dict) else "row must be a JSON object"


class JsonLinesUpload(Generic[T]):
    """A JSON-lines upload parsed while it arrives: the gateway never holds the whole body, only
    the line being read (bounded by the upload limit). ``feed`` is CPU work: call it in a
    thread. A whole-file JSON array (``[...]``) cannot be read line by line: it is kept and
    parsed at :meth:`close`, as a whole file is."""

    def __init__(
        self,
        build: Callable[[Mapping[str, Any]], T],
        key: Callable[[T], str],
        max_rows: int = MAX_ROWS,
    ) -> None:
        self._rows = _Collector(build, key, max_rows)
        self._build, self._key, self._max = build, key, max_rows
        self._tail = b""
        self._line = 0
        self._started = False
        self._array: list[bytes] | None = None

    def feed(self, chunk: bytes) -> None:
        if self._array is not None:
            self._array.append(chunk)
            return
        data = self._tail + chunk
        if not self._started:
            head = data.lstrip()
            if not head or (len(head) < 3 and _BOM.startswith(head)):  # wait: BOM split?
                self._tail = data
                return
            self._started = True
            if head.startswith(_BOM):
                head = head[3:].lstrip()
                data = data.lstrip()[3:]
            if head.startswith(b"["):
                self._array = [data]
                return
        *lines, self._tail = data.split(b"\n")
        for line in lines:
            self._take(line)

    def _take(self, line: bytes) -> None:
        self._line += 1
        if line.strip() and not self._rows.full:
            self._rows.add(self._line, _json_row(line))

    def close(self) -> ParseResult[T]:
        if self._array is not None:
            rows = _json_rows(_decode(b"".join(self._array)))
            out = _Collector(self._build, self._key, self._max)
            for line, row in rows:
                out.add(line, row)
                if out.full:
                    break
            return out.result()
        if self._tail:
            self._take(self._tail)
            self._tail = b""
        return self._rows.result()


def _product_row(row: Mapping[str, Any]) -> Product:
    extra = row.get("_extra")
    if extra:
        merged = {**extra, **_attributes(row.get("attributes"))}
        if len(merged) > MAX_ATTRIBUTES:
            raise _RowInvalid(f"attributes has more than {MAX_ATTRIBUTES} keys")
        row = {**row, "attributes": merged}
    return _product(row)


def parse_products(
    data: bytes, content_type: str, *, max_rows: int = MAX_ROWS
) -> ParseResult[Product]:
    """Parse a product upload (JSON lines / JSON array / CSV with header), UTF-8 with or
    without BOM. Bad rows are reported by line and skipped; duplicate SKUs: last wins."""
    return _parse(
        data,
        content_type,
        _product_row,
        lambda p: p.sku,
        required=("sku", "title"),
        known=_PRODUCT_FIELDS,
        max_rows=max_rows,
    )


def parse_knowledge(
    data: bytes, content_type: str, *, max_rows: int = MAX_ROWS
) -> ParseResult[KnowledgeDoc]:
    """Parse a knowledge upload: rows with ``id``, ``title``, ``body`` (optional
    ``language``). Same formats and error rules as :func:`parse_products`."""
    return _parse(
        data,
        content_type,
        _knowledge,
        lambda d: d.id,
        required=("id", "title", "body"),
        known=frozenset({"id", "title", "body", "language", "lang"}),
        max_rows=max_rows,
    )


def product_upload(max_rows: int = MAX_ROWS) -> JsonLinesUpload[Product]:
    return JsonLinesUpload(_product_row, lambda p: p.sku, max_rows)


def knowledge_upload(max_rows: int = MAX_ROWS) -> JsonLinesUpload[KnowledgeDoc]:
    return JsonLinesUpload(_knowledge, lambda d: d.id, max_rows)


def is_json_lines(content_type: str) -> bool:
    return _media_type(content_type) in JSONL_TYPES


# --- chunking ---------------------------------------------------------------------------------

_PARAGRAPH_RE: Final = re.compile(r"\n\s*\n")
_SENTENCE_RE: Final = re.compile(r"(?<=[.!?؟؛])\s+|\n")
# Arabic prose runs long clauses joined by "،"; they are the natural cut for a window.
_CLAUSE_RE: Final = re.compile(r"(?<=[.!?؟؛،])\s+|\n")
WINDOW_WORDS: Final = 40
MAX_WINDOWS: Final = 8


def text_windows(text: str, words: int = WINDOW_WORDS, max_windows: int = MAX_WINDOWS) -> list[str]:
    """Consecutive clauses packed into windows of at least ``words`` words (the last may be
    shorter), at most ``max_windows`` (the tail is merged), so vector ids per chunk are bounded:
    ``{chunk_id}.{m}`` with ``m < max_windows`` (see :func:`knowledge_vector_ids`)."""
    if words < 1 or max_windows < 1:
        raise ValueError("words and max_windows must be positive")
    windows: list[str] = []
    current: list[str] = []
    count = 0
    for piece in _CLAUSE_RE.split(text):
        piece = piece.strip()
        if not piece:
            continue
        current.append(piece)
        count += len(piece.split())
        if count >= words:
            windows.append(" ".join(current))
            current, count = [], 0
    if current:
        windows.append(" ".join(current))
    if len(windows) > max_windows:
        windows = [*windows[: max_windows - 1], " ".join(windows[max_windows - 1 :])]
    return windows or [text.strip()]


def knowledge_vector_ids(doc_id: str, chunks: int) -> list[str]:
    """Every vector id a document with ``chunks`` chunks may own (for deletes and shrinks),
    including the pre-window ids ``{doc_id}#{n}`` of data indexed before windows existed."""
    ids: list[str] = []
    for n in range(chunks):
        ids.append(f"{doc_id}#{n}")
        ids += [f"{doc_id}#{n}.{m}" for m in range(MAX_WINDOWS)]
    return ids


def _pieces(text: str, max_chars: int) -> list[tuple[str, bool]]:
    """Split text into ``(piece, starts_paragraph)`` no longer than ``max_chars``: paragraphs,
    then sentences, then words (an overlong "sentence" such as a pasted table still splits)."""
    out: list[tuple[str, bool]] = []
    for para in _PARAGRAPH_RE.split(text):
        para = " ".join(para.split())
        if not para:
            continue
        if len(para) <= max_chars:
            out.append((para, True))
            continue
        first = True
        for sentence in _SENTENCE_RE.split(para):
            sentence = sentence.strip()
            while len(sentence) > max_chars:
                cut = sentence.rfind(" ", 0, max_chars + 1)
                if cut <= 0:
                    cut = max_chars
                out.append((sentence[:cut].strip(), first))
                first = False
                sentence = sentence[cut:].strip()
            if sentence:
                out.append((sentence, first))
                first = False
    return out


def chunk_knowledge(doc: KnowledgeDoc, max_chars: int = 700) -> list[KnowledgeChunk]:
    """Split a document into retrievable chunks of at most ``max_chars`` characters.

    Paragraphs are packed greedily (a short policy stays one chunk, so its conditions stay
    next to its numbers); overlong paragraphs fall back to sentence boundaries. Chunk ids
    are positional (``doc#0``, ``doc#1``...), so re-importing the same document yields the
    same ids and vector upserts replace rather than duplicate.
    """
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    chunks: list[str] = []
    current = ""
    for piece, new_paragraph in _pieces(doc.body, max_chars):
        # Packed paragraphs keep a blank line between them (quotes stay readable); the
        # sentences of one split paragraph are rejoined with a space.
        sep = "\n\n" if new_paragraph else " "
        candidate = f"{current}{sep}{piece}" if current else piece
        if len(candidate) <= max_chars:
            current = candidate
        else:
            chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return [
        KnowledgeChunk(id=f"{doc.id}#{n}", doc_id=doc.id, title=doc.title, text=text)
        for n, text in enumerate(chunks)
    ]
