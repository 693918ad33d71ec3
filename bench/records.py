"""Record store benchmark, in-process (no Ray, no HTTP): what one repository call costs.

Seeds one merchant with N products and M conversations in a fresh SQLite file, then times
(one call at a time unless said) an acknowledged write (fsynced before it returns), the same
with 32 writers at once (group commit), a get by id, a product list page, a deep cursor page,
the conversation list and its status+label filter, and a count. Prints one JSON document.

    .venv/bin/python bench/records.py                       # 100,000 products, 50,000 conversations
    .venv/bin/python bench/records.py --products 20000 --conversations 10000 --samples 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.adapters.repositories import conversation_id, sqlite_repositories
from engine.adapters.tables import Tables
from engine.services.repositories import ConversationFilter, Repositories

M = "m_bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 3)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 50), "p95_ms": pct(values, 95)}


async def timed(samples: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    for i in range(5):
        await call(-1 - i)
    times = []
    for i in range(samples):
        t = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - t) * 1000)
    return summary(times)


def _product(n: int, merchant_id: str) -> dict[str, Any]:
    return {
        "_id": f"{merchant_id}:sku-{n:07d}",
        "sku": f"sku-{n:07d}",
        "title": f"item {n}",
        "price": float(n % 500),
        "category": ("mug", "tea", "lamp")[n % 3],
        "in_stock": n % 7 != 0,
    }


async def seed(
    repos: Repositories,
    merchant_id: str,
    products: int,
    conversations: int,
    product: Callable[[int, str], dict[str, Any]] = _product,
) -> dict[str, float]:
    """Products through the import path's bulk upsert; conversations (a projection of
    messages) as records through the table gateway, in bulk waves. Shared by bench/admin.py."""
    t0 = time.perf_counter()
    wave = 1000
    for start in range(0, products, wave):
        docs = [product(n, merchant_id) for n in range(start, min(products, start + wave))]
        await repos.products.upsert_many(merchant_id, docs, time.time())
    t1 = time.perf_counter()
    tables: Tables = repos.store  # type: ignore[assignment]  # both adapters are Tables
    now = time.time()
    for start in range(0, conversations, wave):
        rows = []
        for n in range(start, min(conversations, start + wave)):
            key = f"{merchant_id}:playground:cust-{n}"
            at = now - n
            conversation = {
                "merchant_id": merchant_id,
                "conversation_key": key,
                "channel_id": "playground",
                "customer_id": f"cust-{n}",
                "status": ("open", "pending", "resolved")[n % 3],
                "assignee": None,
                "labels": ["vip"] if n % 50 == 0 else [],
                "paused": False,
                "last_message_at": at,
                "last_text": "hello",
                "message_count": 2,
                "first_in_at": at - 1,
                "first_reply_at": at,
                "created_at": at,
            }
            rows.append((conversation_id(key), conversation))
        await tables.patch_many("conversations", rows, match={"merchant_id": merchant_id})
    return {"products_s": round(t1 - t0, 2), "conversations_s": round(time.perf_counter() - t1, 2)}


async def run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    repos = sqlite_repositories(path)
    seeded = await seed(repos, M, args.products, args.conversations)
    n = args.samples
    counter = iter(range(10**9))

    async def write(i: int) -> None:
        k = next(counter)
        await repos.orders.create({"_id": f"ord_{k:09d}", "merchant_id": M, "created_at": 1.0})

    async def concurrent_writes() -> dict[str, Any]:
        times: list[float] = []

        async def one() -> None:
            t = time.perf_counter()
            await write(0)
            times.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        for _ in range(max(1, n // 32)):
            await asyncio.gather(*(one() for _ in range(32)))
        elapsed = time.perf_counter() - started
        return {**summary(times), "writes_per_s": round(len(times) / elapsed)}

    deep = (None, f"{M}:sku-{args.products // 2:07d}")
    results = {
        "write.acknowledged": await timed(n, write),
        "write.32_concurrent": await concurrent_writes(),
        "products.get": await timed(
            n, lambda i: repos.products.get(M, f"{M}:sku-{(i * 7919) % args.products:07d}")
        ),
        "products.page": await timed(n, lambda i: repos.products.page(M, limit=20, after=None)),
        "products.page.deep_cursor": await timed(
            n, lambda i: repos.products.page(M, limit=20, after=deep)
        ),
        "conversations.page": await timed(
            n, lambda i: repos.conversations.page(M, ConversationFilter(), limit=20, after=None)
        ),
        "conversations.page.status_label": await timed(
            n,
            lambda i: repos.conversations.page(
                M, ConversationFilter(status="pending", label="vip"), limit=20, after=None
            ),
        ),
        "products.count": await timed(min(n, 50), lambda i: repos.products.count(M)),
    }
    await repos.close()
    return {
        "products": args.products,
        "conversations": args.conversations,
        "samples": n,
        "seed": seeded,
        "results": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--conversations", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaleem-bench-records-") as tmp:
        out = asyncio.run(run(args, Path(tmp) / "records.sqlite3"))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
