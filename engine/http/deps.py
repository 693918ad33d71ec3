"""What the gateway needs, as one typed bundle built by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

from engine.adapters.integrations import IntegrationVaultRecords
from engine.adapters.records import Records
from engine.adapters.redis.queues import Inbox
from engine.config import Settings
from engine.services.catalog_admin import CatalogAdmin
from engine.services.commerce import Commerce
from engine.services.gaps import KnowledgeGaps
from engine.services.indexing import IndexItem
from engine.services.payments import Payments
from engine.services.settlement import Settlements
from engine.services.staff import StaffDesk
from engine.services.store_sync import StoreSync


class Indexer(Protocol):
    def submit(
        self,
        job_id: str | None,
        merchant_id: str,
        collection: str,
        items: list[IndexItem],
        docs: list[dict[str, Any]] | None = None,
    ) -> Any: ...

    def reconcile(self, merchant_id: str) -> Any:
        """Index the merchant's records marked pending now (IndexReconciler)."""
        ...


@dataclass(frozen=True, slots=True)
class StoreDesk:
    """Store-platform integrations as the gateway uses them: the records (credentials
    decrypted in memory only), webhook application, and the call that starts a catalogue sync
    where the periodic ones run (the indexer actor)."""

    vault: IntegrationVaultRecords
    sync: StoreSync
    start_sync: Callable[[str], Any]


Readiness = Callable[[], Awaitable[dict[str, bool]]]
# None while the process can work; the reason once it cannot recover by itself (the embedded
# Redis' supervisor gave up), which turns /healthz to 503 so an orchestrator restarts it.
Liveness = Callable[[], str | None]


@dataclass(frozen=True, slots=True)
class GatewayDeps:
    settings: Settings
    records: Records
    inbox: Inbox
    redis: aioredis.Redis
    indexer: Indexer
    readiness: Readiness
    instance: str = "gateway-0"
    liveness: Liveness | None = None
    retriever: Any = (
        None  # engine.domain.conversation.RetrievalPort: the bot's retrieval (admin search)
    )
    # The use cases the routes call, built by the Container like every other process's.
    commerce: Commerce | None = None
    gaps: KnowledgeGaps | None = None
    staff: StaffDesk | None = None
    catalog: CatalogAdmin | None = None
    stores: StoreDesk | None = None
    settlements: Settlements | None = None
    payments: Payments | None = None
