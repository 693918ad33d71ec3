"""Indexing throughput: products indexed per second for a generated catalogue (prints JSON).

    .venv/bin/python bench/index.py [--products 10000] [--sample 600] [--threads 2]
    .venv/bin/python bench/index.py --engine [--products 10000]   # through the running engine

``--engine`` is the number that counts: it starts the real engine (Ray, the Serve embedder, the
embedded stores, the indexer actor) on a temporary data dir, imports the catalogue as JSONL
through ``POST /api/v1/catalog/import`` and times the job from the request to ``done``.

Generates a bilingual catalogue with real-length descriptions (400-900 characters, Arabic +
English, like merchant exports), then times the indexing path the engine runs per product:
embedding text -> ONNX encoder (batched) -> edge vector store upsert, plus the per-merchant
BM25 index build the host does. Several text windows / encoders are timed on ``--sample``
products; the configuration the engine uses is also timed on the full catalogue.

Why text windows matter: encoder cost grows with tokens, and the lexical half of hybrid
retrieval already reads the whole description, so the dense vector only needs the words a
shopper would type (title, category, colour/size and the opening of the description).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.adapters.vectors import EdgeVectorStore
from engine.domain.catalog import Product
from engine.domain.ranking import Bm25Index
from engine.services.ports import VectorPoint
from engine.services.retrieval import lexical_text
from models.encoder import OnnxEncoder
from models.registry import ensure_models

KINDS = [
    ("Running Shoes", "حذاء جري", "Shoes / أحذية"),
    ("Leather Sandals", "نعال جلد", "Sandals / صنادل"),
    ("Handbag", "شنطة يد", "Bags / حقائب"),
    ("Backpack", "حقيبة ظهر", "Bags / حقائب"),
    ("Abaya", "عباية", "Abayas / عبايات"),
    ("Thobe", "ثوب", "Thobes / ثياب"),
    ("Oud Perfume", "عطر عود", "Perfume / عطور"),
    ("Smart Watch", "ساعة ذكية", "Watches / ساعات"),
    ("Phone Case", "كفر جوال", "Phone accessories / إكسسوارات"),
    ("Coffee Pot", "دلة قهوة", "Home / منزل"),
    ("Wireless Earbuds", "سماعات لاسلكية", "Audio / سماعات"),
    ("Kids Toy Car", "سيارة ألعاب", "Toys / ألعاب"),
]
COLOURS = [
    ("Black", "أسود"),
    ("White", "أبيض"),
    ("Red", "أحمر"),
    ("Blue", "أزرق"),
    ("Brown", "بني"),
    ("Beige", "بيج"),
]
STYLES = ["Classic", "Premium", "Sport", "Comfort", "Urban", "Royal", "Lite", "Pro"]
AR_SENTENCES = [
    "مصنوع من خامات عالية الجودة تتحمل الاستخدام اليومي.",
    "تصميم عصري يناسب جميع المناسبات والأوقات.",
    "متوفر بعدة مقاسات وألوان لتختار ما يناسبك.",
    "يأتي في علبة أنيقة مناسبة للهدايا.",
    "سهل التنظيف ويحافظ على شكله مع الوقت.",
    "خفيف الوزن ومريح للاستخدام لفترات طويلة.",
    "ضمان ضد عيوب التصنيع وخدمة ما بعد البيع.",
]
EN_SENTENCES = [
    "Made from high-quality materials that stand up to daily use.",
    "A modern design that suits every occasion.",
    "Available in several sizes and colours so you can pick your fit.",
    "Comes in an elegant box, ready to give as a gift.",
    "Easy to clean and keeps its shape over time.",
    "Lightweight and comfortable for long wear.",
    "Covered against manufacturing defects with after-sales service.",
]


def generate(n: int, seed: int = 7) -> list[Product]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        en, ar, cat = rnd.choice(KINDS)
        col_en, col_ar = rnd.choice(COLOURS)
        style = rnd.choice(STYLES)
        desc = " ".join(
            rnd.sample(AR_SENTENCES, rnd.randint(3, 6))
            + rnd.sample(EN_SENTENCES, rnd.randint(3, 6))
        )
        title = f"{style} {en} – {col_en}" if i % 2 else f"{ar} {style} – {col_ar}"
        out.append(
            Product(
                sku=f"GEN-{i:05d}",
                title=title,
                description=f"{ar} {col_ar}. {desc}",
                price=float(rnd.randint(20, 2000)),
                currency="SAR",
                category=cat,
                attributes={"color": col_en.lower(), "sizes": [40, 41, 42]},
            )
        )
    return out


def window_text(p: Product, chars: int | None) -> str:
    if chars is None:
        return p.embedding_text()
    parts = [p.title, p.category or "", p.description[:chars]]
    colour = p.attributes.get("color")
    if colour:
        parts.append(f"color: {colour}")
    return "\n".join(x for x in parts if x)


async def index_run(
    encoder: OnnxEncoder, products: list[Product], chars: int | None, batch: int, path: Path
) -> dict[str, Any]:
    store = EdgeVectorStore(path)
    await store.ensure_collection("products", encoder.dim)
    t0 = time.perf_counter()
    t_embed = 0.0
    for start in range(0, len(products), batch):
        chunk = products[start : start + batch]
        te = time.perf_counter()
        vectors = await asyncio.to_thread(
            encoder.encode, [window_text(p, chars) for p in chunk], "passage"
        )
        t_embed += time.perf_counter() - te
        await store.upsert(
            "products",
            "m_bench",
            [
                VectorPoint(p.sku, vectors[n].tolist(), {"sku": p.sku, "price": p.price})
                for n, p in enumerate(chunk)
            ],
        )
    t_lex = time.perf_counter()
    Bm25Index([p.sku for p in products], [lexical_text(p) for p in products])
    lex_s = time.perf_counter() - t_lex
    total = time.perf_counter() - t0
    await store.close()
    return {
        "products": len(products),
        "seconds": round(total, 2),
        "products_per_s": round(len(products) / total, 1),
        "embed_s": round(t_embed, 2),
        "bm25_build_s": round(lex_s, 2),
    }


def engine_run(products: list[Product]) -> dict[str, Any]:
    """The import as a merchant runs it: HTTP upload -> job -> indexer actor -> Serve -> store."""
    import aiohttp
    import orjson

    from bench.harness import engine_runtime

    body = b"\n".join(
        orjson.dumps(
            {
                "sku": p.sku,
                "title": p.title,
                "description": p.description,
                "price": p.price,
                "currency": p.currency,
                "category": p.category,
                "attributes": p.attributes,
            }
        )
        for p in products
    )

    async def run(runtime: Any) -> dict[str, Any]:
        await runtime.start_gateway()
        url = f"http://127.0.0.1:{runtime.port}"
        async with aiohttp.ClientSession() as http:
            admin = {"Authorization": f"Bearer {runtime.settings.admin_token}"}
            async with http.post(
                f"{url}/api/v1/merchants", json={"name": "Index bench"}, headers=admin
            ) as r:
                key = (await r.json())["api_key"]
            auth = {"Authorization": f"Bearer {key}"}
            t0 = time.perf_counter()
            async with http.post(
                f"{url}/api/v1/catalog/import",
                data=body,
                headers={**auth, "Content-Type": "application/x-ndjson"},
            ) as r:
                job_id = (await r.json())["job_id"]
            accepted = time.perf_counter() - t0
            stored_at: float | None = None
            while True:
                async with http.get(f"{url}/api/v1/jobs/{job_id}", headers=auth) as r:
                    job: dict[str, Any] = await r.json()
                progress = job.get("progress") or {}
                if stored_at is None and progress.get("stored") == progress.get("total"):
                    stored_at = time.perf_counter() - t0
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.05)
            seconds = time.perf_counter() - t0
            # Searchable at "done"; the description vectors follow (engine.services.indexing).
            described_s: float | None = None
            while job["status"] == "done":
                if (job.get("progress") or {}).get("described", 0) >= len(products):
                    described_s = time.perf_counter() - t0
                    break
                if time.perf_counter() - t0 > 30 * seconds:
                    break
                await asyncio.sleep(0.2)
                async with http.get(f"{url}/api/v1/jobs/{job_id}", headers=auth) as r:
                    job = await r.json()
        return {
            "products": len(products),
            "job": {k: v for k, v in job.items() if k != "errors"},
            "errors": (job.get("errors") or [])[:3],
            "accepted_s": round(accepted, 2),  # upload parsed, job created (202)
            "stored_s": round(stored_at or seconds, 2),  # records written, indexing starts
            "seconds": round(seconds, 2),
            "products_per_s": round(len(products) / seconds, 1),
            # Every description vector written too (the dense signal at full strength).
            "described_s": None if described_s is None else round(described_s, 2),
            "described_per_s": None
            if described_s is None
            else round(len(products) / described_s, 1),
        }

    with engine_runtime("kaleem-bench-index-") as runtime:
        return asyncio.run(run(runtime))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--models-dir", default=".kaleem/models")
    ap.add_argument("--full", default="e5:0", help="config timed on the whole catalogue")
    ap.add_argument("--engine", action="store_true", help="time an import through the engine")
    return ap.parse_args()


def engine_main(args: argparse.Namespace) -> None:
    catalogue = generate(args.products)
    result = engine_run(catalogue)
    print(
        json.dumps(
            {
                "catalogue": args.products,
                "avg_description_chars": round(
                    sum(len(p.description) for p in catalogue) / len(catalogue)
                ),
                "engine": result,
            },
            indent=2,
        )
    )


async def main(args: argparse.Namespace) -> None:
    paths = ensure_models(Path(args.models_dir), names=("e5", "use"))
    encoders = {name: OnnxEncoder(paths[name], threads=args.threads) for name in ("e5", "use")}
    catalogue = generate(args.products)
    sample = catalogue[: args.sample]
    configs: list[tuple[str, int | None]] = [
        ("e5", None),
        ("e5", 120),
        ("e5", 0),
        ("use", None),
    ]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, chars in configs:
            label = f"{model}:{'full400' if chars is None else chars}"
            results[label] = await index_run(
                encoders[model], sample, chars, args.batch, Path(tmp) / label.replace(":", "-")
            )
        model, _, window = args.full.partition(":")
        chars = None if window in ("", "full400") else int(window)
        full = await index_run(encoders[model], catalogue, chars, args.batch, Path(tmp) / "full")
    print(
        json.dumps(
            {
                "catalogue": args.products,
                "avg_description_chars": round(
                    sum(len(p.description) for p in catalogue) / len(catalogue)
                ),
                "threads": args.threads,
                "batch": args.batch,
                "sample_runs": results,
                "full_run": {"config": args.full, **full},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    cli_args = parse_args()
    if cli_args.engine:
        engine_main(cli_args)
    else:
        asyncio.run(main(cli_args))
