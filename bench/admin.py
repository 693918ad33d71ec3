"""Admin API benchmark: p50/p95/p99 of list, get, search and create on a large merchant.

Starts the real engine (embedded Redis, Ray, Serve, models, the embedded vector store actor,
the SQLite record store, the gateway on loopback), seeds ONE merchant with N products and M
conversations straight into the record store (embedding 100k products with e5 would take over
an hour, so only ``--indexed`` of them get vectors, enough for search to be realistic), then
measures the HTTP API one request at a time and prints one JSON document.

    .venv/bin/python bench/admin.py                      # 100,000 products, 50,000 conversations
    .venv/bin/python bench/admin.py --products 20000 --conversations 10000 --samples 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.runtime import Runtime
from bench.records import seed as seed_records
from engine.config import Settings

WORDS = [
    *("mug", "lamp", "shoe", "bag", "watch", "scarf", "perfume"),
    *("charger", "phone", "cable", "desk", "chair", "tea", "coffee"),
]
COLORS = ["red", "blue", "green", "black", "white", "brown", "gold", "silver"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": pct(values, 50),
        "p95_ms": pct(values, 95),
        "p99_ms": pct(values, 99),
        "max_ms": round(max(values), 2),
    }


def product(n: int, merchant_id: str) -> dict[str, Any]:
    word, color = WORDS[n % len(WORDS)], COLORS[n % len(COLORS)]
    sku = f"sku-{n:07d}"
    return {
        "_id": f"{merchant_id}:{sku}",
        "merchant_id": merchant_id,
        "sku": sku,
        "title": f"{color} {word} model {n}",
        "description": f"A {color} {word}.",
        "price": float(5 + n % 500),
        "currency": "SAR",
        "category": word,
        "url": None,
        "image_url": None,
        "in_stock": n % 7 != 0,
        "attributes": {},
        "updated_at": time.time(),
    }


async def seed(
    rt: Runtime, merchant_id: str, products: int, conversations: int
) -> dict[str, float]:
    assert rt.records is not None
    return await seed_records(rt.records.repos, merchant_id, products, conversations, product)


async def measure(
    session: aiohttp.ClientSession, samples: int, make: Callable[[int], Awaitable[int]]
) -> dict[str, Any]:
    for i in range(5):  # warm-up
        await make(-1 - i)
    times: list[float] = []
    statuses: dict[int, int] = {}
    for i in range(samples):
        t = time.perf_counter()
        status = await make(i)
        times.append((time.perf_counter() - t) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
    return {**summary(times), "statuses": statuses}


async def run(args: argparse.Namespace, rt: Runtime) -> dict[str, Any]:
    await rt.start_gateway()
    base = f"http://127.0.0.1:{rt.port}"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/v1/auth/signup",
            json={
                "merchant_name": "Bench",
                "email": f"b-{uuid.uuid4().hex[:6]}@example.com",
                "password": "bench-password",
            },
        ) as r:
            body = await r.json()
        merchant_id = body["merchant_id"]
        owner = {"Authorization": f"Bearer {body['access_token']}"}
        async with session.post(
            f"{base}/api/v1/api-keys", json={"name": "bench"}, headers=owner
        ) as r:
            key = (await r.json())["api_key"]
        auth = {"Authorization": f"Bearer {key}"}  # a server key: no 15-minute expiry mid-run
        seeded = await seed(rt, merchant_id, args.products, args.conversations)
        indexed_from = args.products - args.indexed
        if args.indexed:
            from engine.domain import catalog
            from engine.services.indexing import IndexItem

            items = []
            for n in range(indexed_from, args.products):
                p = catalog.Product.from_doc(product(n, merchant_id))
                items.append(
                    IndexItem(
                        p.sku,
                        p.embedding_text(),
                        {
                            "sku": p.sku,
                            "title": p.title,
                            "price": p.price,
                            "currency": p.currency,
                            "url": None,
                            "in_stock": p.in_stock,
                            "category": p.category,
                            "kind": "product",
                        },
                    )
                )
            t = time.perf_counter()
            assert rt.indexer is not None
            await rt.indexer.index.remote(
                None, merchant_id, "products", [i.to_dict() for i in items], None
            )
            seeded["indexed_s"] = round(time.perf_counter() - t, 1)
        rng = random.Random(7)
        cursors: list[str] = []

        async def get(path: str) -> int:
            async with session.get(base + path, headers=auth) as r:
                data = await r.read()
                if r.status == 200 and path.startswith("/api/v1/products?"):
                    nxt = json.loads(data).get("next_cursor")
                    if nxt and len(cursors) < 50:
                        cursors.append(nxt)
                return r.status

        async def list_first(i: int) -> int:
            return await get("/api/v1/products?limit=20")

        async def list_deep(i: int) -> int:
            sku = f"sku-{rng.randrange(args.products):07d}"
            from engine.http.paging import encode_cursor

            return await get(
                f"/api/v1/products?limit=20&cursor={encode_cursor([None, f'{merchant_id}:{sku}'])}"
            )

        async def get_one(i: int) -> int:
            return await get(f"/api/v1/products/sku-{rng.randrange(args.products):07d}")

        async def search(i: int) -> int:
            q = f"{COLORS[i % len(COLORS)]} {WORDS[i % len(WORDS)]}"
            return await get(f"/api/v1/products/search?q={q}&limit=10")

        async def create(i: int) -> int:
            body = {"sku": f"new-{uuid.uuid4().hex[:12]}", "title": "bench item", "price": 10}
            async with session.post(f"{base}/api/v1/products", json=body, headers=auth) as r:
                await r.read()
                return r.status

        async def conv_list(i: int) -> int:
            return await get("/api/v1/conversations?limit=20")

        async def conv_filtered(i: int) -> int:
            return await get("/api/v1/conversations?limit=20&status=pending&label=vip")

        async def order(i: int) -> int:
            body = {
                "customer": {"name": "N", "phone": "0551234567", "city": "Riyadh"},
                "items": [{"sku": f"sku-{rng.randrange(1, args.products):07d}", "qty": 1}],
            }
            hdr = {**auth, "Idempotency-Key": str(uuid.uuid4())}
            async with session.post(f"{base}/api/v1/orders", json=body, headers=hdr) as r:
                await r.read()
                return r.status

        n = args.samples
        slow = min(n, args.list_samples)  # lists and their cursors: --list-samples
        # The first search of a merchant builds its BM25 index (and loads the gateway's query
        # encoder): a one-off reported on its own, not mixed into the steady-state samples.
        t0 = time.perf_counter()
        await search(-1)
        first_search_ms = round((time.perf_counter() - t0) * 1000, 1)
        results = {
            "products.list.first_page": await measure(session, slow, list_first),
            "products.list.cursor_page": await measure(session, slow, list_deep),
            "products.get": await measure(session, n, get_one),
            "products.search": await measure(session, n, search),
            "products.create": await measure(session, n, create),
            "orders.create": await measure(session, n, order),
            "conversations.list": await measure(session, slow, conv_list),
            "conversations.list.filtered": await measure(session, n, conv_filtered),
        }
    return {
        "products": args.products,
        "conversations": args.conversations,
        "indexed_products": args.indexed,
        "samples": n,
        "seed": seeded,
        "targets_ms": {"read_p95": 20, "write_p95": 50},
        "first_search_ms": first_search_ms,
        "results": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--conversations", type=int, default=50_000)
    ap.add_argument("--indexed", type=int, default=1_000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--list-samples", type=int, default=20)
    args = ap.parse_args()
    models = Path(__import__("os").environ.get("KALEEM_MODELS_DIR", ".kaleem/models"))
    with tempfile.TemporaryDirectory(prefix="kaleem-bench-admin-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            models_dir=models,
            port=0,
            admin_token="bench-" + "x" * 24,
            ray_dashboard=False,
            log_json=False,
            api_rate_per_key=10**9,
            api_rate_per_ip=10**9,
        )
        rt = Runtime(settings)
        rt.start_backends()
        loop = asyncio.new_event_loop()
        try:
            out = loop.run_until_complete(run(args, rt))
            print(json.dumps(out, indent=2))
        finally:
            loop.run_until_complete(rt.stop())
            rt.stop_backends()
            loop.close()


if __name__ == "__main__":
    main()
