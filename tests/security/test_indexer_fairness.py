"""One merchant's big import cannot hold the indexer while another merchant's edit waits.

The indexer ran one job at a time behind one lock, so a 10,000-product import (about 45 s of
embedding on this machine) made every other merchant's import or product edit wait for all of
it. The embed batches now take turns per merchant (``engine/services/fairness.py``). These
tests drive the real ``IndexService`` the way the indexer actor does, without Ray: fakes stand
in for the Serve embedder, the vector store and the records.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from engine.services.fairness import FairEmbedder, FairGate, KeyedLocks, tenant
from engine.services.indexing import IndexItem, IndexService
from engine.services.ports import FloatMatrix


class SlowEmbedder:
    """Each batch takes a scheduling round; records whose batch it was."""

    def __init__(self) -> None:
        self.batches: list[str] = []
        self.two_done = asyncio.Event()

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        return np.zeros((len(texts), 4), dtype=np.float32)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        self.batches.append(texts[0].split(":", 1)[0])
        if len(self.batches) >= 2:
            self.two_done.set()
        for _ in range(3):
            await asyncio.sleep(0)
        return np.ones((len(texts), 4), dtype=np.float32)


class Vectors:
    def __init__(self) -> None:
        self.upserts: list[str] = []

    async def upsert(self, collection: str, merchant_id: str, points: list[Any]) -> None:
        self.upserts.append(merchant_id)

    def __getattr__(self, name: str) -> Any:  # the rest of the port is not used here
        raise AttributeError(name)


class Jobs:
    def __init__(self) -> None:
        self.done: list[str] = []

    async def update_job(self, job_id: str, **fields: Any) -> None:
        if fields.get("status") == "done":
            self.done.append(job_id)

    async def upsert_many(self, collection: str, merchant_id: str, docs: list[Any]) -> None:
        return None


def _items(merchant: str, n: int) -> list[IndexItem]:
    return [IndexItem(f"{merchant}-{i}", f"{merchant}: product {i}", {}) for i in range(n)]


async def test_a_small_import_is_indexed_while_a_big_one_is_still_running() -> None:
    embedder, vectors, jobs = SlowEmbedder(), Vectors(), Jobs()
    gate, locks = FairGate(slots=1), KeyedLocks()
    service = IndexService(FairEmbedder(embedder, gate), vectors, jobs, batch_size=512)  # type: ignore[arg-type]

    async def job(job_id: str, merchant: str, n: int) -> int:
        with tenant(merchant):  # what IndexerActor.index does around each call
            async with locks.hold(merchant):
                return await service.index(job_id, merchant, "products", _items(merchant, n))

    big = asyncio.create_task(job("job-big", "m_big", 10_000))  # 20 batches
    await embedder.two_done.wait()
    small = asyncio.create_task(job("job-small", "m_small", 10))
    edit = asyncio.create_task(job("job-edit", "m_other", 1))
    assert await small == 10 and await edit == 1
    assert jobs.done[:2] == ["job-small", "job-edit"] or jobs.done[:2] == ["job-edit", "job-small"]
    assert embedder.batches.count("m_big") < 20  # the big import was still running ...
    assert await big == 10_000  # ... and finished afterwards, every batch of it
    assert embedder.batches.count("m_big") == 20 and jobs.done[-1] == "job-big"
    # The small ones went in right after the big import's batch in flight, not after all 20.
    assert embedder.batches.index("m_small") <= 3 and embedder.batches.index("m_other") <= 4


async def test_the_gate_goes_round_robin_and_keeps_each_merchants_order() -> None:
    gate = FairGate(slots=1)
    order: list[str] = []
    release = asyncio.Event()

    async def work(key: str, label: str) -> None:
        async with gate.turn(key):
            order.append(label)
            await release.wait()

    first = asyncio.create_task(work("a", "a0"))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(work("a", f"a{i}")) for i in range(1, 4)]
    tasks += [asyncio.create_task(work("b", "b1")), asyncio.create_task(work("c", "c1"))]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *tasks)
    assert order == ["a0", "b1", "c1", "a1", "a2", "a3"]  # who just had a turn goes last


async def test_a_cancelled_waiter_gives_its_turn_on() -> None:
    gate = FairGate(slots=1)
    held = asyncio.Event()
    release = asyncio.Event()
    got: list[str] = []

    async def hold() -> None:
        async with gate.turn("a"):
            held.set()
            await release.wait()

    async def take(key: str) -> None:
        async with gate.turn(key):
            got.append(key)

    holder = asyncio.create_task(hold())
    await held.wait()
    doomed = asyncio.create_task(take("b"))
    later = asyncio.create_task(take("c"))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await asyncio.gather(holder, later)
    assert got == ["c"] and gate.waiting == 0
