"""Indexer actor: catalog and knowledge imports run here, off the gateway's event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors import metrics_backend
from actors.loops import keep_running
from actors.remotes import container
from engine.config import Settings
from engine.services.fairness import FairEmbedder, FairGate, KeyedLocks, tenant
from engine.services.indexing import IndexItem, IndexReconciler, IndexService
from observability import logging_setup, tracing

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class IndexerActor:
    def __init__(self, settings: Settings, stores_actor: Any | None, embedder: Any) -> None:
        logging_setup.configure(settings.log_level, settings.log_json, service="kaleem-indexer")
        tracing.configure_tracing(settings, "kaleem-indexer")
        # The settlement loop's counters leave this process through Ray's metrics agent.
        metrics_backend.bind()
        c = container(settings, stores_actor, embedder)
        self._vectors = c.remotes.vectors
        # One embed batch at a time keeps the embedder free for live questions between batches,
        # and the batches take turns per merchant: a 10,000-product import no longer holds the
        # indexer until it is done while another merchant's one edit waits behind it.
        self._gate = FairGate(slots=1)
        self._service = IndexService(FairEmbedder(c.embedder, self._gate), self._vectors, c.records)
        self._reconciler = IndexReconciler(c.repos, self._service, self._vectors)
        self._every = max(0.5, settings.index_reconcile_s)
        # Also restarts with the actor: records left pending by a crash are picked up here.
        self._loop_task = asyncio.get_running_loop().create_task(self._reconcile_forever())
        # A merchant's own work stays one job at a time, in the order it came.
        self._locks = KeyedLocks()
        # Store platforms: first syncs on request, then every KALEEM_STORE_SYNC_INTERVAL_S;
        # one process runs them all, so one integration never has two passes at once.
        self._stores = c.store_sync(_Nudge(self))
        self._store_every = max(1.0, min(settings.store_sync_interval_s, 60.0))
        self._store_task = asyncio.get_running_loop().create_task(self._sync_stores_forever())
        self._store_runs: set[asyncio.Task[Any]] = set()
        # Daily settlement runs beside the sweep: periodic, per merchant, off the gateways. A
        # second engine (or this actor restarted mid-run) is harmless: the lease and the
        # record's key make each date happen once.
        self._settlements = c.settlements
        self._settle_every = settings.settlement_interval_s
        self._settle_task = asyncio.get_running_loop().create_task(
            keep_running(self._settle_forever, "settlement", pause_s=self._settle_every)
        )

    async def ready(self) -> bool:
        return True

    async def index(
        self,
        job_id: str | None,
        merchant_id: str,
        collection: str,
        items: list[dict[str, Any]],
        docs: list[dict[str, Any]] | None = None,
    ) -> int:
        with tenant(merchant_id):
            async with self._locks.hold(merchant_id):
                return await self._service.index(
                    job_id, merchant_id, collection, [IndexItem.from_dict(i) for i in items], docs
                )

    async def reconcile(self, merchant_id: str | None = None) -> int:
        """Index records whose latest version is pending (the API's nudge after a write)."""
        key = merchant_id or "*sweep*"  # the periodic sweep takes turns like one more tenant
        with tenant(key):
            async with self._locks.hold(key):
                return await self._reconciler.run_once(merchant_id)

    async def sync_store(self, integration_id: str) -> bool:
        """Start a catalogue pass now (the connect route's first sync); returns at once."""
        task = asyncio.get_running_loop().create_task(self._stores.sync(integration_id))
        self._store_runs.add(task)
        task.add_done_callback(self._store_runs.discard)
        return True

    async def _sync_stores_forever(self) -> None:
        while True:
            try:
                await self._stores.sweep()
            except Exception:  # a database outage: the next sweep tries again
                log.exception("store sync sweep failed; retrying")
            await asyncio.sleep(self._store_every)

    async def _settle_forever(self) -> None:
        while True:
            written = await self._settlements.run_once()
            if written:
                log.info("settled %d merchant-days", written)
            await asyncio.sleep(self._settle_every)

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:  # an embedder or store outage: the records stay pending
                log.exception("index reconcile failed; retrying")
            await asyncio.sleep(self._every)


class _Nudge:
    """The store sync's nudge inside the indexer itself: index the merchant's pending
    records soon, without waiting in the sync for it."""

    def __init__(self, actor: IndexerActor) -> None:
        self._actor = actor
        self._tasks: set[asyncio.Task[Any]] = set()

    def reconcile(self, merchant_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._actor.reconcile(merchant_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class IndexerClient:
    """Gateway-side port: starts jobs without waiting for them.

    Dropping the returned ref does not cancel a Ray actor task, so fire-and-forget is safe;
    progress and failures are reported on the job record.
    """

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def submit(
        self,
        job_id: str | None,
        merchant_id: str,
        collection: str,
        items: list[IndexItem],
        docs: list[dict[str, Any]] | None = None,
    ) -> Any:
        return self._actor.index.remote(
            job_id, merchant_id, collection, [i.to_dict() for i in items], docs
        )

    def reconcile(self, merchant_id: str) -> Any:
        return self._actor.reconcile.remote(merchant_id)

    def sync_store(self, integration_id: str) -> Any:
        return self._actor.sync_store.remote(integration_id)
