"""End-to-end answer quality on a merchant store: questions through the real reply pipeline.

Three ways to reach the pipeline, one scorer:

* ``--url``: a running engine, through the playground API (``POST /api/v1/playground/messages``);
* default: the Runtime started in-process (Ray, Serve, actors, gateway), then the same HTTP;
* :class:`LocalEngine` (tests, ``--local``): the same ``TurnService`` + ``Retriever`` +
  ``LexicalIndexes`` + ``Commerce`` + edge vector store + ONNX encoder, in one process
  without Ray, so the suite can pin quality in seconds.

Scoring (all from what the customer would see): product hit@3, policy facts present, handoff
offered, no products for out-of-scope questions, no invented prices (every price-looking
number in a reply is a catalogue price, a sum of shown prices, or a number from the
knowledge base), orders created, and latency per reply.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.domain.text import normalize_arabic, normalize_digits

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_PRICE_RE = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)\s*(?:SAR|ريال|ر\.س)")


class Asker(Protocol):
    async def ask(self, customer: str, text: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class StoreData:
    catalog: bytes
    knowledge: bytes
    questions: list[dict[str, Any]]

    @classmethod
    def load(cls, catalog: Path, knowledge: Path, questions: Path, limit: int = 0) -> StoreData:
        qs = [json.loads(line) for line in questions.read_text("utf-8").splitlines() if line]
        return cls(catalog.read_bytes(), knowledge.read_bytes(), qs[:limit] if limit else qs)

    def prices(self) -> set[float]:
        out = set()
        for line in self.catalog.decode("utf-8").splitlines():
            if line.strip():
                price = json.loads(line).get("price")
                if price is not None:
                    out.add(round(float(price), 2))
        return out

    def knowledge_numbers(self) -> set[str]:
        return set(_NUMBER_RE.findall(normalize_digits(self.knowledge.decode("utf-8"))))


# --- the in-process pipeline without Ray ---------------------------------------------------------


class _LocalEmbedder:
    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder

    async def embed_queries(self, texts: list[str]) -> Any:
        return await asyncio.to_thread(self._encoder.encode, texts, "query")

    async def embed_passages(self, texts: list[str]) -> Any:
        return await asyncio.to_thread(self._encoder.encode, texts, "passage")


class LocalEngine:
    """The reply pipeline in one process: same classes the host actor wires, minus Ray."""

    def __init__(self, models_dir: Path, data_dir: Path, model: str = "e5") -> None:
        from engine.adapters.repositories import sqlite_repositories
        from engine.adapters.vectors import EdgeVectorStore
        from engine.config import Settings
        from engine.domain.conversation import MerchantProfile, Thresholds
        from engine.domain.dialogue.turns import TurnService
        from engine.services.commerce import Commerce
        from engine.services.gaps import KnowledgeGaps
        from engine.services.retrieval import LexicalIndexes, ResultCache, Retriever
        from models.encoder import OnnxEncoder
        from models.registry import ensure_models

        path = ensure_models(models_dir, names=(model,))[model]
        self.encoder = OnnxEncoder(path, threads=2)
        self.embedder = _LocalEmbedder(self.encoder)
        self.repos = sqlite_repositories(data_dir / "records.sqlite3")
        self.vectors = EdgeVectorStore(data_dir / "vectors")
        self.commerce = Commerce(self.repos)
        self.gaps = KnowledgeGaps(self.repos)
        defaults = Settings()
        # The hosts' results cache, so the evaluation answers exactly as they would.
        self.retriever = Retriever(
            self.embedder,
            self.vectors,
            LexicalIndexes(self.repos, check_every_s=0.0),
            results=ResultCache(defaults.retrieval_cache_entries, defaults.retrieval_cache_ttl_s),
        )
        self.turns = TurnService(
            self.retriever, Thresholds(), commerce=self.commerce, gaps=self.gaps
        )
        self.profile = MerchantProfile("m_eval", "Kaleem Eval Store", "ar")
        self._states: dict[str, Any] = {}
        self._n = 0

    async def load(self, data: StoreData) -> None:
        from engine.domain import catalog
        from engine.domain.catalog import KNOWLEDGE, PRODUCTS
        from engine.services.indexing import IndexItem
        from engine.services.ports import VectorPoint

        mid = self.profile.merchant_id
        dim = self.encoder.dim
        await self.vectors.ensure_collection(PRODUCTS, dim)
        await self.vectors.ensure_collection(KNOWLEDGE, dim)
        products = catalog.parse_products(data.catalog, "application/x-ndjson").rows
        docs = catalog.parse_knowledge(data.knowledge, "application/x-ndjson").rows
        now = time.time()
        await self.repos.products.upsert_many(mid, [p.to_doc(mid) for p in products], now)
        await self.repos.knowledge.upsert_many(mid, [d.to_doc(mid) for d in docs], now)
        items = [item for p in products for item in product_items(p)]
        items += [item for d in docs for item in knowledge_items(d)]
        for collection, group in itertools.groupby(items, key=lambda i: i[0]):
            batch: list[IndexItem] = [i[1] for i in group]
            vectors = await self.embedder.embed_passages([i.text for i in batch])
            await self.vectors.upsert(
                collection,
                mid,
                [
                    VectorPoint(
                        i.id, vectors[n].tolist(), {**i.payload, "text": i.text, "merchant_id": mid}
                    )
                    for n, i in enumerate(batch)
                ],
            )

    async def ask(self, customer: str, text: str) -> dict[str, Any]:
        from engine.domain.conversation import ConversationState
        from engine.domain.messages import InboundMessage

        self._n += 1
        message = InboundMessage(
            merchant_id=self.profile.merchant_id,
            channel_id="playground",
            channel_kind="playground",
            customer_id=customer,
            message_id=f"ev-{self._n}",
            text=text,
            received_at=time.time(),
        )
        state = self._states.get(customer) or ConversationState.new(message)
        result = await self.turns.run_turn(state, [message], self.profile, time.time())
        self._states[customer] = ConversationState.from_dict(result.state.to_dict())
        assert result.reply is not None
        return result.reply.to_dict()

    async def close(self) -> None:
        await self.vectors.close()
        await self.repos.close()


def product_items(p: Any) -> list[tuple[str, Any]]:
    """The same index items every writer builds (engine.services.indexing.product_index_items)."""
    from engine.services.indexing import product_index_items

    return [("products", item) for item in product_index_items(p)]


def knowledge_items(d: Any) -> list[tuple[str, Any]]:
    from engine.services.indexing import knowledge_index_items

    return [("knowledge", item) for item in knowledge_index_items(d)]


# --- over HTTP (a running engine, or the Runtime started here) ------------------------------------


class HttpEngine:
    def __init__(self, base_url: str, admin_token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin = admin_token
        self._session: Any = None
        self._key = ""

    async def start(self, data: StoreData) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession()
        async with self._session.post(
            f"{self.base_url}/api/v1/merchants",
            json={"name": "Kaleem Eval Store", "default_language": "ar"},
            headers={"Authorization": f"Bearer {self._admin}"},
        ) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"creating the eval merchant failed: {r.status} {body}")
            self._key = str(body["api_key"])
        await self._import("/api/v1/catalog/import", data.catalog)
        await self._import("/api/v1/knowledge/import", data.knowledge)

    async def _import(self, route: str, payload: bytes) -> None:
        headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/x-ndjson"}
        async with self._session.post(
            f"{self.base_url}{route}", data=payload, headers=headers
        ) as r:
            job_id = (await r.json())["job_id"]
        for _ in range(3000):
            async with self._session.get(
                f"{self.base_url}/api/v1/jobs/{job_id}", headers=headers
            ) as r:
                job = await r.json()
            if job.get("status") != "running":
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"import {route} did not finish")

    async def ask(self, customer: str, text: str) -> dict[str, Any]:
        async with self._session.post(
            f"{self.base_url}/api/v1/playground/messages",
            json={"customer_id": customer, "text": text},
            headers={"Authorization": f"Bearer {self._key}"},
        ) as r:
            body: dict[str, Any] = await r.json()
            if r.status != 200:
                raise RuntimeError(f"playground answered {r.status}: {body}")
            return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# --- scoring -----------------------------------------------------------------------------------


def _as_prices(numbers: set[str]) -> set[float]:
    """Knowledge numbers as amounts: "2,000" (a thousands separator) is 2000, like a reply's."""
    out: set[float] = set()
    for raw in numbers:
        plain = raw.replace(",", "")
        if plain.replace(".", "", 1).isdigit():
            out.add(round(float(plain), 2))
    return out


def _has_fact(text: str, fact: str) -> bool:
    return normalize_arabic(normalize_digits(fact)) in normalize_arabic(normalize_digits(text))


def _invented_prices(reply: dict[str, Any], allowed: set[float], shown: list[float]) -> list[str]:
    """Price-looking numbers in the reply that no record supports."""
    sums = {round(sum(c), 2) for n in (1, 2, 3) for c in itertools.combinations(shown, n)}
    bad = []
    for raw in _PRICE_RE.findall(normalize_digits(str(reply.get("text") or ""))):
        value = round(float(raw.replace(",", "")), 2)
        if value not in allowed and value not in sums:
            bad.append(raw)
    for p in reply.get("products") or []:
        if p.get("price") is not None and round(float(p["price"]), 2) not in allowed:
            bad.append(str(p["price"]))
    return bad


async def run_questions(
    engine: Asker, data: StoreData, *, progress: bool = False
) -> dict[str, Any]:
    allowed = data.prices()
    knowledge_numbers = data.knowledge_numbers()
    counts: dict[str, list[bool]] = {
        k: []
        for k in (
            "product_hit@3",
            "policy_accuracy",
            "handoff",
            "out_of_scope_no_products",
            "intent_small_talk",
            "followups",
            "orders",
        )
    }
    invented_prices: list[dict[str, Any]] = []
    invented_policy: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    latencies: list[float] = []
    for q in data.questions:
        customer = f"eval-{q['id']}"
        replies: list[dict[str, Any]] = []
        shown: list[float] = []
        for turn in q["turns"]:
            t0 = time.perf_counter()
            reply = await engine.ask(customer, turn)
            latencies.append(time.perf_counter() - t0)
            replies.append(reply)
            shown += [float(p["price"]) for p in reply.get("products") or [] if p.get("price")]
            bad = _invented_prices(
                reply,
                allowed | _as_prices(knowledge_numbers),
                shown,
            )
            if bad:
                invented_prices.append({"id": q["id"], "turn": turn, "numbers": bad})
            if reply.get("intent") == "policy_question":
                nums = set(_NUMBER_RE.findall(normalize_digits(str(reply.get("text") or ""))))
                unsupported = sorted(nums - knowledge_numbers)
                if unsupported:
                    invented_policy.append({"id": q["id"], "numbers": unsupported})
        last = replies[-1]
        kind = q["kind"]
        ok: bool | None = None
        skus = [p["sku"] for p in last.get("products") or []]
        if kind == "product":
            ok = bool(set(skus[:3]) & set(q["expect_skus"]))
            if q.get("max_price") is not None:
                ok = ok and all(
                    (p.get("price") or 0) <= q["max_price"] for p in last.get("products") or []
                )
            counts["product_hit@3"].append(ok)
        elif kind == "policy":
            ok = all(_has_fact(str(last.get("text")), f) for f in q["expect_facts"])
            ok = ok and not last.get("products")
            counts["policy_accuracy"].append(ok)
        elif kind == "handoff":
            ok = bool(last.get("handoff"))
            counts["handoff"].append(ok)
        elif kind == "out_of_scope":
            ok = not last.get("products")
            counts["out_of_scope_no_products"].append(ok)
        elif kind in ("greeting", "thanks"):
            ok = last.get("intent") == kind
            counts["intent_small_talk"].append(ok)
        elif kind in ("detail", "cheaper", "cart"):
            ok = _followup_ok(q, replies)
            counts["followups"].append(ok)
        elif kind in ("checkout", "order_status"):
            ok = _order_ok(q, replies)
            counts["orders"].append(ok)
        if ok is False:
            failures.append(
                {
                    "id": q["id"],
                    "kind": kind,
                    "turns": q["turns"],
                    "intent": last.get("intent"),
                    "reply": str(last.get("text"))[:200],
                    "skus": skus,
                }
            )
        if progress:
            print(f"{q['id']} {kind} {'ok' if ok is not False else 'FAIL'}", flush=True)
    rates = {k: _rate(v) for k, v in counts.items()}
    ms = sorted(x * 1000 for x in latencies)
    targets = {
        "product_hit@3": 0.95,
        "policy_accuracy": 0.95,
        "handoff": 1.0,
        "out_of_scope_no_products": 1.0,
    }
    passed = (
        all((rates[k]["rate"] or 0.0) >= v for k, v in targets.items())
        and not invented_prices
        and not invented_policy
    )
    return {
        "questions": len(data.questions),
        "replies": len(latencies),
        "metrics": rates,
        "invented_prices": invented_prices,
        "invented_policy_numbers": invented_policy,
        "latency_ms": {
            "p50": round(statistics.median(ms), 1) if ms else None,
            "p95": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
            "mean": round(statistics.fmean(ms), 1) if ms else None,
        },
        "targets": targets,
        "passed": passed,
        "failures": failures,
    }


def _rate(values: Sequence[bool]) -> dict[str, Any]:
    return {"rate": round(sum(values) / len(values), 4) if values else None, "n": len(values)}


def _followup_ok(q: dict[str, Any], replies: list[dict[str, Any]]) -> bool:
    first, last = replies[0], replies[-1]
    shown = first.get("products") or []
    if q.get("expect_price_of_shown"):
        position = 1 if "الأول" in q["turns"][-1] or "first" in q["turns"][-1] else 2
        if len(shown) < position or shown[position - 1].get("price") is None:
            return False
        price = shown[position - 1]["price"]
        return f"{price:g}" in normalize_digits(str(last.get("text"))).replace(",", "")
    if q.get("expect_cheaper"):
        if not shown or shown[0].get("price") is None:
            return False
        ref = float(shown[0]["price"])
        cheaper = last.get("products") or []
        return bool(cheaper) and all(float(p.get("price") or 1e9) < ref for p in cheaper)
    if q["kind"] == "cart":
        return all(_has_fact(str(last.get("text")), f) for f in q.get("expect_facts") or [])
    skus = [p["sku"] for p in last.get("products") or []]
    return bool(set(skus[:1]) & set(q.get("expect_skus") or []))


def _order_ok(q: dict[str, Any], replies: list[dict[str, Any]]) -> bool:
    texts = [str(r.get("text") or "") for r in replies]
    if q.get("expect_status"):
        return bool(re.search(r"ord_[0-9a-f]+", texts[-1]))
    placed = [t for t in texts if re.search(r"ord_[0-9a-f]+", t)]
    if not placed:
        return False
    return all(_has_fact(placed[-1], f) for f in q.get("expect_facts") or [])


# --- the CLI entry -----------------------------------------------------------------------------


async def run_store_eval(args: argparse.Namespace) -> dict[str, Any]:
    data = StoreData.load(
        Path(args.catalog), Path(args.knowledge), Path(args.questions), args.limit
    )
    started = time.perf_counter()
    if getattr(args, "local", False):
        from engine.config import Settings

        models = Path(args.models_dir) if args.models_dir else Settings.from_env().models_dir
        with tempfile.TemporaryDirectory() as tmp:
            local = LocalEngine(models, Path(tmp))
            try:
                await local.load(data)
                result = await run_questions(local, data)
            finally:
                await local.close()
        mode = "local (TurnService in-process, no Ray)"
    elif args.url:
        from engine.config import Settings

        token = args.admin_token or Settings.from_env().admin_token
        http = HttpEngine(args.url, token)
        try:
            await http.start(data)
            result = await run_questions(http, data)
        finally:
            await http.close()
        mode = f"http {args.url}"
    else:
        result = await _with_runtime(args, data)
        mode = "runtime started in-process (Ray + Serve + gateway)"
    return {"mode": mode, "seconds": round(time.perf_counter() - started, 1), **result}


async def _with_runtime(args: argparse.Namespace, data: StoreData) -> dict[str, Any]:
    import secrets

    from actors.runtime import Runtime
    from engine.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        base = Settings.from_env()
        token = secrets.token_urlsafe(24)
        settings = base.with_overrides(
            data_dir=Path(tmp),
            models_dir=Path(args.models_dir) if args.models_dir else base.models_dir.resolve(),
            port=0,
            admin_token=token,
            ray_dashboard=False,
        )
        runtime = Runtime(settings)
        await asyncio.to_thread(runtime.start_backends)
        try:
            port = await runtime.start_gateway()
            http = HttpEngine(f"http://{settings.host}:{port}", token)
            try:
                await http.start(data)
                return await run_questions(http, data)
            finally:
                await http.close()
                await runtime.stop()
        finally:
            await asyncio.to_thread(runtime.stop_backends)
