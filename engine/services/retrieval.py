"""Hybrid retrieval for one merchant: dense (e5) + BM25 over the merchant's own corpus, fused.

Every call carries ``merchant_id`` down to the vector store (whose port makes it a required
filter) and to the per-merchant lexical index, so one merchant's question can never surface
another merchant's records.

Hot path: ONE Serve call per question (the query embedding). The lexical half and the fusion
run here, in the host actor, over an in-memory BM25 index per merchant built from its
records: measured on ARCD, the model-based second stage we could run offline (USE over
the fused candidates) moved nDCG@10 by +0.005 for the price of a second Serve call (~6 ms CPU,
half the engine's message throughput), so it is not on the hot path.

Two different numbers per candidate, on purpose:

* ``rank`` order comes from ``hybrid_rank`` (z-scored dense + BM25, weights
  tuned on ARCD train/) — the best *ordering*, but z-scores are relative to the set;
* ``score`` is an absolute confidence in [0, 1] (dense cosine fused with the IDF-weighted
  share of query terms the text contains), comparable across questions, which the dialogue
  compares with thresholds to decide answer / clarify / fallback.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.domain.catalog import (
    DESCRIPTION_VECTOR,
    KNOWLEDGE,
    PRODUCTS,
    KnowledgeDoc,
    Product,
    chunk_knowledge,
)
from engine.domain.dialogue.constraints import COLOURS
from engine.domain.messages import ProductCard
from engine.domain.ranking import (
    HYBRID_DEPTH,
    KNOWLEDGE_WEIGHTS,
    PRODUCT_WEIGHTS,
    Bm25Index,
    StatsLookup,
    TermStats,
    candidate_signals,
    fuse,
    hybrid_rank,
    known_stats,
    lexical_scores,
    product_rank,
)
from engine.domain.retrieval import Filters, KnowledgeHit, ProductHit, RetrievalResult
from engine.domain.text import expand_for_embedding, normalize_arabic
from engine.services.embedding_cache import normalise_query
from engine.services.ports import (
    Embedder,
    VectorHit,
    VectorStore,
)
from engine.services.repositories import CatalogRepository, Repositories
from observability import metrics, tracing

log = logging.getLogger(__name__)

KNOWLEDGE_DEPTH = 10
# Windows, not chunks, come back from the vector store: ~3 windows per chunk keeps about
# KNOWLEDGE_DEPTH distinct chunks in the dense half.
KNOWLEDGE_WINDOW_DEPTH = 3 * KNOWLEDGE_DEPTH


# --- per-merchant lexical index ----------------------------------------------------------------


@dataclass(slots=True)
class MerchantLexicon:
    """BM25 over one merchant's products and knowledge chunks, with the records behind them."""

    products: Bm25Index
    product_docs: dict[str, dict[str, Any]]
    product_texts: dict[str, str]
    knowledge: Bm25Index
    chunks: dict[str, dict[str, Any]]
    signature: tuple[Any, ...]
    checked_at: float
    build_s: float = 0.0
    built_at: float = 0.0
    # At the last check, nothing of the merchant waited for the vector index (no pending
    # record, no tombstone): the dense half agrees with ``signature`` (see ResultCache).
    settled: bool = False
    # Checks that found something waiting: a write that kept the signature (an ``updated_at``
    # no newer than the newest, e.g. from a host whose clock is behind) still moves it.
    unsettled_checks: int = 0
    _norms: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def revision(self) -> tuple[Any, ...]:
        """What the results cache keys on (see :class:`ResultCache`)."""
        return (self.signature, self.unsettled_checks)

    def observe(self, settled: bool) -> None:
        self.settled = settled
        self.unsettled_checks += not settled

    def top_products(self, query: str, k: int) -> dict[str, float]:
        return _top(self.products, query, k)

    def top_knowledge(self, query: str, k: int) -> dict[str, float]:
        return _top(self.knowledge, query, k)

    def product_stats(self, texts: Mapping[str, str]) -> StatsLookup:
        """Term counts of the candidates ranked by the very text this lexicon indexed; the
        others (a vector payload's text for a product the records lack) return None and are
        tokenised by the caller."""
        return _stats_lookup(self.products, texts, self.product_texts.get)

    def knowledge_stats(self, texts: Mapping[str, str]) -> StatsLookup:
        """As :meth:`product_stats`; a chunk is indexed as "title\\nbody", the text ranked."""
        return _stats_lookup(
            self.knowledge, texts, lambda i: self.chunks[i]["text"] if i in self.chunks else None
        )

    def normalised(self, sku: str, text: str) -> str:
        """:func:`normalize_arabic` of a product's ranking text, once per lexicon for the
        products the filters look at (the lexicon's text only; any other text afresh)."""
        if self.product_texts.get(sku) != text:
            return normalize_arabic(text)
        norm = self._norms.get(sku)
        if norm is None:
            norm = self._norms[sku] = normalize_arabic(text)
        return norm


def _stats_lookup(
    index: Bm25Index, texts: Mapping[str, str], indexed_text: Callable[[str], str | None]
) -> StatsLookup:
    def lookup(terms: Sequence[str], ids: Sequence[str]) -> Sequence[TermStats | None]:
        stats = index.term_stats(terms, ids)
        return [
            s if s is not None and indexed_text(i) == texts.get(i, "") else None
            for i, s in zip(ids, stats, strict=True)
        ]

    return lookup


def _top(index: Bm25Index, query: str, k: int) -> dict[str, float]:
    if not len(index):
        return {}
    scores = index.scores(query)
    if len(scores) > k:
        # Top-k without sorting the whole catalogue: argsort of 100k scores cost 5-9 ms per
        # query, argpartition well under 1 ms; only the k survivors are ordered.
        top = np.argpartition(-scores, k)[:k]
        order = top[np.argsort(-scores[top], kind="stable")]
    else:
        order = np.argsort(-scores, kind="stable")
    return {index.ids[i]: float(scores[i]) for i in order if scores[i] > 0}


LEXICAL_DESCRIPTION_CHARS = 2_000


def lexical_text(product: Product) -> str:
    """What BM25 reads: unlike the dense window, the whole (bounded) description.

    The dense vector only needs the words a shopper types (title, category, the opening); exact
    details further down ("waterproof", "16 GB", a model number) are the lexical signal's job,
    which costs nothing extra at indexing time.
    """
    attrs = "; ".join(
        f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in list(product.attributes.items())[:10]
        if isinstance(v, str | int | float | list) and not isinstance(v, bool)
    )
    parts = [
        product.title,
        product.category or "",
        product.description[:LEXICAL_DESCRIPTION_CHARS],
        attrs,
    ]
    return "\n".join(p for p in parts if p)


def build_lexicon(
    products: list[dict[str, Any]], knowledge: list[dict[str, Any]], signature: tuple[Any, ...]
) -> MerchantLexicon:
    """Pure: records in, index out (runs in a worker thread for large catalogues)."""
    product_docs: dict[str, dict[str, Any]] = {}
    product_texts: dict[str, str] = {}
    for doc in products:
        try:
            product = Product.from_doc(doc)
        except (KeyError, TypeError, ValueError):
            continue
        product_docs[product.sku] = doc
        product_texts[product.sku] = lexical_text(product)
    chunks: dict[str, dict[str, Any]] = {}
    for doc in knowledge:
        kd = KnowledgeDoc(
            id=str(doc.get("doc_id") or doc.get("_id")),
            title=str(doc.get("title") or ""),
            body=str(doc.get("body") or ""),
            language=doc.get("language"),
        )
        for chunk in chunk_knowledge(kd):
            chunks[chunk.id] = {
                "doc_id": chunk.doc_id,
                "title": chunk.title,
                "body": chunk.text,
                "language": kd.language,
                "text": chunk.embedding_text(),
            }
    return MerchantLexicon(
        products=Bm25Index(list(product_texts), list(product_texts.values())),
        product_docs=product_docs,
        product_texts=product_texts,
        knowledge=Bm25Index(list(chunks), [c["text"] for c in chunks.values()]),
        chunks=chunks,
        signature=signature,
        checked_at=time.monotonic(),
    )


# A rebuild this fast runs inline, so the very next question sees a change (small catalogues).
INLINE_BUILD_S = 0.25
# A slower one runs in the background, at most once per this many build durations, and the
# previous index keeps answering meanwhile: a 100k-product catalogue takes seconds to index,
# and a merchant editing products must not make every question wait for (or burn CPU on) it.
REBUILD_COOLDOWN_FACTOR = 10.0


class LexicalIndexes:
    """Per-merchant :class:`MerchantLexicon` cache, rebuilt when the merchant's records change.

    Freshness: at most every ``check_every_s`` a turn reads a signature (counts and the newest
    ``updated_at`` of products and knowledge); a change rebuilds the index. When the last build
    was quick (< ``INLINE_BUILD_S``: a small catalogue, whose counts are cheap too) the check and
    the rebuild run inline, so the next question sees the change; otherwise both run in the
    background while the previous index answers (stale only in its lexical half: vectors are
    already fresh), because counting a big catalogue costs milliseconds a question should not
    wait for. Bounded by ``max_merchants`` (LRU), so a host serving many merchants keeps memory
    flat.
    """

    def __init__(
        self, repos: Repositories, *, max_merchants: int = 256, check_every_s: float = 2.0
    ) -> None:
        self._repos = repos
        self._max = max_merchants
        self._every = check_every_s
        self._items: OrderedDict[str, MerchantLexicon] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._rebuilding: dict[str, asyncio.Task[None]] = {}

    async def _signature(self, merchant_id: str) -> tuple[Any, ...]:
        parts: list[Any] = []
        for records in (self._repos.products, self._repos.knowledge):
            count, newest = await asyncio.gather(
                records.count(merchant_id), records.newest_change(merchant_id)
            )
            parts += [count, newest]
        return tuple(parts)

    async def _settled(self, merchant_id: str) -> bool:
        """No record of the merchant waits for the indexer (pending) or for its vectors'
        removal (tombstone). Read AFTER the signature: a write that lands between the two reads
        either shows here as pending or changes the signature the next check reads."""
        waiting = await asyncio.gather(
            self._repos.products.pending(merchant_id, after_id=None, limit=1),
            self._repos.knowledge.pending(merchant_id, after_id=None, limit=1),
            self._repos.tombstones.batch(merchant_id, limit=1),
        )
        return not any(waiting)

    async def _check(self, merchant_id: str) -> tuple[tuple[Any, ...], bool]:
        signature = await self._signature(merchant_id)
        return signature, await self._settled(merchant_id)

    async def get(self, merchant_id: str) -> MerchantLexicon:
        current = self._items.get(merchant_id)
        now = time.monotonic()
        if current is not None and now - current.checked_at < self._every:
            self._items.move_to_end(merchant_id)
            return current
        lock = self._locks.setdefault(merchant_id, asyncio.Lock())
        async with lock:
            current = self._items.get(merchant_id)
            if current is not None and time.monotonic() - current.checked_at < self._every:
                return current
            if current is not None and current.build_s >= INLINE_BUILD_S:
                current.checked_at = time.monotonic()
                self._items.move_to_end(merchant_id)
                self._rebuild_later(merchant_id, current)
                return current
            signature, settled = await self._check(merchant_id)
            if current is not None and current.signature == signature:
                current.observe(settled)
                current.checked_at = time.monotonic()
                self._items.move_to_end(merchant_id)
                return current
            return await self._build(merchant_id, signature, settled)

    def _rebuild_later(self, merchant_id: str, current: MerchantLexicon) -> None:
        running = self._rebuilding.get(merchant_id)
        if running is not None and not running.done():
            return
        if time.monotonic() - current.built_at < current.build_s * REBUILD_COOLDOWN_FACTOR:
            return

        async def rebuild() -> None:
            try:
                signature, settled = await self._check(merchant_id)
                if signature != current.signature:
                    await self._build(merchant_id, signature, settled)
                else:
                    current.observe(settled)
            except Exception:  # the previous index keeps serving; the next check retries
                log.exception("lexical index rebuild failed", extra={"merchant": merchant_id})

        self._rebuilding[merchant_id] = asyncio.create_task(rebuild())

    async def _build(
        self, merchant_id: str, signature: tuple[Any, ...], settled: bool
    ) -> MerchantLexicon:
        started = time.monotonic()
        products, knowledge = await asyncio.gather(
            _all(self._repos.products, merchant_id), _all(self._repos.knowledge, merchant_id)
        )
        lexicon = await asyncio.to_thread(build_lexicon, products, knowledge, signature)
        lexicon.observe(settled)
        lexicon.built_at = time.monotonic()
        lexicon.build_s = lexicon.built_at - started
        self._items[merchant_id] = lexicon
        self._items.move_to_end(merchant_id)
        while len(self._items) > self._max:
            evicted, _ = self._items.popitem(last=False)
            self._locks.pop(evicted, None)
            self._rebuilding.pop(evicted, None)
        return lexicon


async def _all(records: CatalogRepository, merchant_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for page in records.scan(merchant_id):
        out += page
    return out


# --- retrieval ---------------------------------------------------------------------------------


def _product_card(sku: str, p: dict[str, Any]) -> ProductCard:
    price = p.get("price")
    return ProductCard(
        sku=str(p.get("sku", sku)),
        title=str(p.get("title") or ""),
        price=None if price is None else float(price),
        currency=p.get("currency"),
        url=p.get("url"),
        image_url=p.get("image_url"),
    )


def product_hit(
    sku: str, payload: dict[str, Any], score: float, dense: float, text: str
) -> ProductHit:
    return ProductHit(
        card=_product_card(sku, payload),
        score=score,
        dense=dense,
        in_stock=bool(payload.get("in_stock", True)),
        category=payload.get("category"),
        attributes=dict(payload.get("attributes") or {}),
        text=text,
    )


def _attr_values(doc: dict[str, Any], *names: str) -> list[str]:
    attrs = doc.get("attributes") or {}
    out: list[str] = []
    for name in names:
        value = attrs.get(name)
        if isinstance(value, list):
            out += [normalize_arabic(str(v)) for v in value]
        elif value is not None:
            out.append(normalize_arabic(str(value)))
    return out


def passes(
    filters: Filters,
    payload: dict[str, Any],
    text: str,
    normalised: Callable[[str], str] = normalize_arabic,
) -> bool:
    """Whether a product satisfies every hard constraint (unknown price fails a price bound).

    The text is normalised only for a constraint that reads it (colour, size, category), and
    through ``normalised`` (a lexicon's memo): most questions have none, and normalising every
    candidate's text was the largest single cost of ranking a turn.
    """
    price = payload.get("price")
    if filters.max_price is not None and (price is None or float(price) > filters.max_price):
        return False
    if filters.min_price is not None and (price is None or float(price) < filters.min_price):
        return False
    if str(payload.get("sku")) in filters.exclude_skus:
        return False
    if not (filters.colour or filters.size or filters.category):
        return True
    norm = normalised(text)
    if filters.colour:
        words = {filters.colour, *COLOURS.get(filters.colour, ())}
        colours = set(_attr_values(payload, "color", "colour", "colors", "colours"))
        if not colours & words and not words & set(norm.replace("-", " ").split()):
            return False
    if filters.size:
        sizes = _attr_values(payload, "sizes", "size")
        if sizes and filters.size not in sizes:
            return False
        if not sizes and not _mentions(norm, filters.size):
            return False
    if filters.category:
        cat = normalize_arabic(str(payload.get("category") or ""))
        if filters.category not in cat and not _mentions(norm, filters.category):
            return False
    return True


def _mentions(norm_text: str, word: str) -> bool:
    return f" {word} " in f" {norm_text} " or word in norm_text.split()


def best_vector_per_product(
    hits: list[VectorHit],
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """A product owns a title vector (id = SKU) and a description vector (``{sku}#d``): its
    dense score is the better of the two; the payload is the title vector's when it came back
    (its ``text`` is the shorter, title-first one)."""
    dense: dict[str, float] = {}
    payloads: dict[str, dict[str, Any]] = {}
    for h in hits:
        sku = h.id.removesuffix(DESCRIPTION_VECTOR)
        if h.score > dense.get(sku, float("-inf")):
            dense[sku] = h.score
        if sku not in payloads or h.id == sku:
            payloads[sku] = dict(h.payload)
    return dense, payloads


def best_window_per_chunk(
    hits: list[VectorHit],
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Knowledge vectors are windows of chunks: score each chunk by its best window.

    Returns chunk id -> best cosine and chunk id -> payload (title, body, doc id, language).
    Vectors indexed before windows existed have no ``chunk_id``; their id is the chunk id.
    """
    dense: dict[str, float] = {}
    payloads: dict[str, dict[str, Any]] = {}
    for h in hits:
        chunk = str(h.payload.get("chunk_id") or h.id)
        if h.score > dense.get(chunk, float("-inf")):
            dense[chunk] = h.score
            payloads[chunk] = dict(h.payload)
    return dense, payloads


# --- results cache -----------------------------------------------------------------------------

RESULTS_CACHE = "retrieval_results"

ResultKey = tuple[str, str, Filters, int, int, tuple[Any, ...]]


def _copy_result(result: RetrievalResult) -> RetrievalResult:
    """A result no caller shares with the cache: fresh lists, fresh attribute dicts (the hits
    and cards are frozen; their strings are immutable)."""
    return RetrievalResult(
        [dataclasses.replace(p, attributes=copy.deepcopy(p.attributes)) for p in result.products],
        list(result.knowledge),
        0.0,
    )


class ResultCache:
    """Bounded per-process LRU of :class:`RetrievalResult` s, keyed by the catalog's revision.

    Shoppers repeat questions (a few hundred make most of a store's traffic), and a repeat would
    otherwise pay the embedding, two vector-search hops and the ranking again for the same
    answer. The key is (merchant, the query as the embedder sees it, filters, limits, revision):

    * the query is :func:`normalise_query` of the question (whitespace collapsed): the embedder
      sees exactly that (its own cache keys on it) and the lexical half tokenises it, which is
      whitespace-blind, so two questions with one key get the same answer uncached;
    * the revision is :attr:`MerchantLexicon.revision`: the lexicon's signature (product and
      knowledge counts plus the newest ``updated_at`` of each), which every write an answer
      could see (create, edit, delete, import, store sync) moves, and the number of checks that
      found a record pending or a tombstone, which moves even for a write whose ``updated_at``
      is no newer than the newest. The lexicon already reads both at most every
      ``check_every_s`` per merchant, so the cache costs no store round trip per question; a
      change of one merchant changes only that merchant's key.

    The dense half lags the records until the indexer has run (the record-as-outbox marks the
    record pending; a deletion leaves a tombstone until its vectors are gone). A result computed
    while anything of the merchant waits (``MerchantLexicon.settled`` false at the last check,
    or turned false during the computation) is therefore not cached at all: cached, it would
    keep a new product missing after it was indexed, since indexing changes no signature.

    Staleness is bounded twice: by the revision, as fresh as the lexical index (inline checks
    every couple of seconds for small catalogues, background checks for big ones), and by
    ``ttl_s`` whatever happens. Results are copied in and out so no caller can mutate an entry.
    """

    def __init__(
        self, max_entries: int, ttl_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._items: OrderedDict[ResultKey, tuple[float, RetrievalResult]] = OrderedDict()
        self.counts = {"l1_hit": 0, "l1_miss": 0}

    @property
    def enabled(self) -> bool:
        return self._max > 0 and self._ttl > 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: ResultKey) -> RetrievalResult | None:
        entry = self._items.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._items[key]
            entry = None
        outcome = "miss" if entry is None else "hit"
        self.counts[f"l1_{outcome}"] += 1
        metrics.CACHE.labels(RESULTS_CACHE, "l1", outcome).inc()
        if entry is None:
            return None
        self._items.move_to_end(key)
        return _copy_result(entry[1])

    def put(self, key: ResultKey, result: RetrievalResult) -> None:
        self._items[key] = (self._clock() + self._ttl, _copy_result(result))
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)


class Retriever:
    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorStore,
        lexicons: LexicalIndexes | None = None,
        *,
        results: ResultCache | None = None,
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._lexicons = lexicons
        # Without a lexicon there is no revision to key on: nothing is cached.
        self._results = results if results is not None and results.enabled else None

    @property
    def cache_counts(self) -> dict[str, int]:
        """Results-cache lookups of this process (empty when the cache is off)."""
        return dict(self._results.counts) if self._results is not None else {}

    async def retrieve(
        self,
        merchant_id: str,
        query: str,
        *,
        product_limit: int = 10,
        knowledge_limit: int = 5,
        max_price: float | None = None,
        filters: Filters | None = None,
    ) -> RetrievalResult:
        f = filters or Filters(max_price=max_price)
        if max_price is not None and f.max_price is None:
            f = Filters(**{**_as_kwargs(f), "max_price": max_price})
        if self._results is None or self._lexicons is None:
            return await self._retrieve(merchant_id, query, product_limit, knowledge_limit, f)
        # The revision comes from the lexicon, so its freshness check (a store round trip at
        # most every few seconds) now precedes the embedding instead of overlapping it: the
        # price of answering repeats with no embedding at all.
        lexicon = await self._lexicons.get(merchant_id)
        key: ResultKey = (
            merchant_id,
            normalise_query(query),
            f,
            product_limit,
            knowledge_limit,
            lexicon.revision,
        )
        cached = self._results.get(key)
        if cached is not None:
            return cached
        settled = lexicon.settled
        result = await self._retrieve(
            merchant_id, query, product_limit, knowledge_limit, f, lexicon=lexicon
        )
        # Nothing waited for the indexer when the question started, and no check meanwhile
        # found anything waiting.
        if settled and lexicon.settled and lexicon.revision == key[-1]:
            self._results.put(key, result)
        return result

    async def _retrieve(
        self,
        merchant_id: str,
        query: str,
        product_limit: int,
        knowledge_limit: int,
        f: Filters,
        *,
        lexicon: MerchantLexicon | None = None,
    ) -> RetrievalResult:
        loop = asyncio.get_running_loop()
        # The lexical index does not need the query vector: its freshness check (a store round
        # trip every few seconds) overlaps the embedding instead of following it.
        lexicon_task = (
            asyncio.ensure_future(self._lexicons.get(merchant_id))
            if self._lexicons is not None and lexicon is None
            else None
        )
        t0 = loop.time()
        try:
            with tracing.span("embed", kind=tracing.CLIENT, attributes={"kaleem.batch": 1}):
                embedded = await self._embedder.embed_queries([expand_for_embedding(query)])
            vector = embedded[0].tolist()
            inference = loop.time() - t0
            metrics.INFERENCE_LATENCY.labels("embedder").observe(inference)
            metrics.INFERENCE_BATCH.labels("embedder").observe(1)
            t_search = loop.time()
            # A filtered question needs a deeper dense pool: the constraint removes candidates.
            depth = HYBRID_DEPTH * (3 if f.active() else 1)
            with tracing.span(
                "vector.search", kind=tracing.CLIENT, attributes={"kaleem.depth": depth}
            ):
                # Two vectors per product (title, description): twice the hits for ``depth``
                # distinct products.
                searches = [self._vectors.search(PRODUCTS, merchant_id, vector, limit=2 * depth)]
                if knowledge_limit > 0:  # admin product search asks for no knowledge
                    searches.append(
                        self._vectors.search(
                            KNOWLEDGE, merchant_id, vector, limit=KNOWLEDGE_WINDOW_DEPTH
                        )
                    )
                found = await asyncio.gather(*searches)
                product_hits = found[0]
                knowledge_hits = found[1] if len(found) > 1 else []
                tracing.annotate(product_hits=len(product_hits), knowledge_hits=len(knowledge_hits))
        except BaseException:
            if lexicon_task is not None:
                lexicon_task.cancel()
            raise
        metrics.VECTOR_SEARCH_LATENCY.labels("products+knowledge").observe(loop.time() - t_search)
        with tracing.span("rank"):  # BM25 over the merchant's lexicon + fusion, in-process
            if lexicon_task is not None:
                lexicon = await lexicon_task
            products = self._products(query, product_hits, lexicon, f, depth, product_limit)
            knowledge = self._knowledge(query, knowledge_hits, lexicon) if knowledge_limit else []
        return RetrievalResult(products[:product_limit], knowledge[:knowledge_limit], inference)

    def _products(
        self,
        query: str,
        hits: list[VectorHit],
        lexicon: MerchantLexicon | None,
        f: Filters,
        depth: int,
        limit: int | None = None,
    ) -> list[ProductHit]:
        """Ranked products, the first ``limit`` of them as hits: confidence is relative to every
        candidate that passes, but only the shown ones need a card (building one per candidate
        was a tenth of a turn's ranking time)."""
        dense, payloads = best_vector_per_product(hits)
        texts = {i: str(p.get("text") or "") for i, p in payloads.items()}
        bm25 = lexicon.top_products(query, depth) if lexicon is not None else {}
        if lexicon is not None:
            for sku in [*bm25, *dense]:
                doc = lexicon.product_docs.get(sku)
                if doc is None:
                    continue
                # The records are the source of truth (price, stock, attributes);
                # vector payloads may lag an update by one indexing job.
                payloads[sku] = {**payloads.get(sku, {}), **doc}
                texts[sku] = lexicon.product_texts.get(sku) or texts.get(sku, "")
        stats = lexicon.product_stats(texts) if lexicon is not None else None
        signals = candidate_signals(query, dense, bm25, texts, stats)
        signals["stock"] = {
            i: 1.0 if payloads.get(i, {}).get("in_stock", True) else 0.0 for i in signals["cov"]
        }
        ranked = product_rank(signals, PRODUCT_WEIGHTS)
        ids = [
            i
            for i, _ in ranked
            if i in payloads and passes(f, payloads[i], texts.get(i, ""), _normaliser(lexicon, i))
        ]
        if not ids:
            return []
        confidence = self._confidence(query, ids, dense, texts, stats)
        return [
            product_hit(i, payloads[i], confidence[i], dense.get(i, 0.0), texts.get(i, ""))
            for i in ids[:limit]
        ]

    def _knowledge(
        self, query: str, hits: list[VectorHit], lexicon: MerchantLexicon | None
    ) -> list[KnowledgeHit]:
        dense, payloads = best_window_per_chunk(hits)
        bm25 = lexicon.top_knowledge(query, KNOWLEDGE_DEPTH) if lexicon is not None else {}
        for cid in bm25:
            payloads.setdefault(cid, lexicon.chunks[cid] if lexicon is not None else {})
        texts = {i: f"{p.get('title') or ''}\n{p.get('body') or ''}" for i, p in payloads.items()}
        stats = lexicon.knowledge_stats(texts) if lexicon is not None else None
        signals = candidate_signals(query, dense, bm25, texts, stats)
        ranked = hybrid_rank(signals, KNOWLEDGE_WEIGHTS)
        ids = [i for i, _ in ranked if i in payloads]
        if not ids:
            return []
        confidence = self._confidence(query, ids, dense, texts, stats)
        return [
            KnowledgeHit(
                doc_id=str(payloads[i].get("doc_id") or i),
                title=str(payloads[i].get("title") or ""),
                text=str(payloads[i].get("body") or payloads[i].get("text") or ""),
                score=confidence[i],
                dense=dense.get(i, 0.0),
                language=payloads[i].get("language"),
            )
            for i in ids
        ]

    @staticmethod
    def _confidence(
        query: str,
        ids: list[str],
        dense: dict[str, float],
        texts: dict[str, str],
        stats: StatsLookup | None = None,
    ) -> dict[str, float]:
        """Absolute [0, 1] confidence (0.7 cosine + 0.3 lexical share), see module docstring.

        A candidate found only lexically gets the weakest dense score of the set: it is at
        best as semantically close as the worst dense candidate.
        """
        floor = min(dense.values()) if dense else 0.0
        lexical = lexical_scores(
            query, [texts.get(i, "") for i in ids], known_stats(query, ids, stats)
        )
        fused = fuse([dense.get(i, floor) for i in ids], lexical)
        return dict(zip(ids, fused, strict=True))


def _normaliser(lexicon: MerchantLexicon | None, sku: str) -> Callable[[str], str]:
    if lexicon is None:
        return normalize_arabic
    return functools.partial(lexicon.normalised, sku)


def _as_kwargs(f: Filters) -> dict[str, Any]:
    return {
        "max_price": f.max_price,
        "min_price": f.min_price,
        "colour": f.colour,
        "size": f.size,
        "category": f.category,
        "exclude_skus": f.exclude_skus,
    }
