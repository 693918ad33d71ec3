"""The one place that builds the engine's object graph, for every process and for the tests.

Each process (the gateway, a conversation host, a delivery actor, the indexer, a benchmark, a
test) makes ONE :class:`Container` from its :class:`~engine.config.Settings` and the
:class:`Remotes` it was handed (port adapters over things that live in other processes: Serve
deployments, the vector-store owner, the indexer actor). Records need no remote: every process
opens the repositories itself (MongoDB when ``MONGO_URL`` is set, else the SQLite file in the
data directory, which every process of the engine shares). Components are built lazily, once,
and shared; a test replaces any of them with ``overrides`` (a fake repository, a fake clock),
which is the only way wiring changes between production and tests.

Nothing here imports Ray: the adapters over Ray handles are built in ``actors/`` and
``serve_apps/`` and arrive through :class:`Remotes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import redis.asyncio as aioredis

from engine.adapters.integrations import IntegrationVaultRecords
from engine.adapters.llm import OpenAICompatibleModel, check_base_url
from engine.adapters.payments import PaymentClient
from engine.adapters.providers import provider_defaults, send_limits
from engine.adapters.records import Records
from engine.adapters.redis.keys import INBOX_GROUP, OUTBOX_GROUP, inbox_stream, outbox_stream
from engine.adapters.redis.leases import RedisSettlementLeases
from engine.adapters.redis.live_events import RedisLiveEvents
from engine.adapters.redis.queues import Inbox, Outbox, StreamConsumer, TurnCommitter
from engine.adapters.redis.server import redis_client
from engine.adapters.redis.vector_cache import RedisVectorCache
from engine.adapters.repositories import mongo_repositories, sqlite_repositories
from engine.adapters.secrets import SecretBox, load_or_create_key
from engine.adapters.store_http import EgressStoreHttp
from engine.config import Settings
from engine.domain.sharding import partitions_of_host
from engine.http.deps import GatewayDeps, Liveness, Readiness, StoreDesk
from engine.services.catalog_admin import CatalogAdmin, IndexNudge
from engine.services.commerce import Commerce
from engine.services.delivery import DeliveryBounds
from engine.services.embedding_cache import CachedQueryEmbedder
from engine.services.gaps import KnowledgeGaps
from engine.services.payments import Payments
from engine.services.phrasing import InProcessTokenBudget, Phraser
from engine.services.ports import Embedder, VectorStore
from engine.services.repositories import Repositories
from engine.services.retrieval import LexicalIndexes, ResultCache, Retriever
from engine.services.settlement import SettlementPolicy, Settlements
from engine.services.staff import StaffDesk
from engine.services.store_sync import StoreSync, SyncBounds

__all__ = ["RECORDS_FILE", "Container", "Remotes", "provider_defaults", "send_limits"]

# The embedded record store, in the data directory.
RECORDS_FILE = "records.sqlite3"


def delivery_bounds(settings: Settings) -> DeliveryBounds:
    """What one channel or merchant may hold of a kind's delivery worker."""
    return DeliveryBounds(
        inflight_per_channel=settings.delivery_max_inflight_per_channel,
        inflight_per_merchant=settings.delivery_max_inflight_per_merchant,
        queued_per_channel=settings.delivery_max_queued_per_channel,
        send_timeout_s=settings.delivery_send_timeout_s,
    )


@dataclass(frozen=True, slots=True)
class Remotes:
    """Port adapters over what lives in other processes (built by ``actors/`` and
    ``serve_apps/`` from Ray handles; in-process fakes in tests)."""

    vectors: VectorStore
    embedder: Embedder | None = None  # the query/passage encoder (Serve), when this process embeds
    indexer: Any = None  # engine.http.deps.Indexer: the import/reindex jobs


class Container:
    """Lazily built, shared components of one process. ``overrides`` replace any of them."""

    def __init__(self, settings: Settings, remotes: Remotes, **overrides: Any) -> None:
        self.settings = settings
        self.remotes = remotes
        for name, value in overrides.items():
            if not hasattr(type(self), name):
                raise TypeError(f"Container has no component {name!r}")
            self.__dict__[name] = value  # what a cached_property would have built

    # -- infrastructure ------------------------------------------------------------------
    @cached_property
    def redis(self) -> aioredis.Redis:
        return redis_client(self.settings.redis_url)

    @cached_property
    def secret_box(self) -> SecretBox:
        s = self.settings
        return SecretBox(load_or_create_key(s.secret_key, s.data_dir))

    @cached_property
    def repos(self) -> Repositories:
        """MongoDB when ``MONGO_URL`` is set, else ``DATA_DIR/records.sqlite3`` (no I/O yet:
        the adapters connect on first use)."""
        s = self.settings
        if s.mongo_url:
            return mongo_repositories(s.mongo_url, s.mongo_db)
        return sqlite_repositories(s.data_dir.absolute() / RECORDS_FILE)

    @cached_property
    def records(self) -> Records:
        return Records(self.repos, self.secret_box)

    # -- queues ---------------------------------------------------------------------------
    @cached_property
    def inbox(self) -> Inbox:
        return Inbox(
            self.redis,
            self.settings.inbox_partitions,
            local_dedupe_ttl_s=self.settings.webchat_dedupe_ttl_s,
        )

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.redis)

    @cached_property
    def checkpoints(self) -> TurnCommitter:
        return TurnCommitter(self.redis, self.settings.conversation_idle_ttl_s)

    def inbox_consumer(self, host_index: int) -> StreamConsumer:
        s = self.settings
        partitions = partitions_of_host(host_index, s.host_actors, s.inbox_partitions)
        return StreamConsumer(
            self.redis, [inbox_stream(p) for p in partitions], INBOX_GROUP, f"host-{host_index}"
        )

    def outbox_consumer(self, channel_kind: str, consumer: str) -> StreamConsumer:
        return StreamConsumer(self.redis, [outbox_stream(channel_kind)], OUTBOX_GROUP, consumer)

    # -- services -------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self.remotes.embedder is None:
            raise RuntimeError("this process was given no embedder")
        return self.remotes.embedder

    @cached_property
    def commerce(self) -> Commerce:
        return Commerce(self.repos)

    @cached_property
    def gaps(self) -> KnowledgeGaps:
        return KnowledgeGaps(self.repos)

    @cached_property
    def staff(self) -> StaffDesk:
        return StaffDesk(self.inbox, self.checkpoints, self.outbox, self.records)

    @cached_property
    def catalog_admin(self) -> CatalogAdmin:
        return CatalogAdmin(self.repos, self.remotes.indexer)

    @cached_property
    def settlements(self) -> Settlements:
        s = self.settings
        policy = SettlementPolicy(
            lookback_days=s.settlement_lookback_days,
            max_dates_per_run=s.settlement_max_dates_per_run,
            lease_ms=s.settlement_lease_ms,
        )
        return Settlements(self.repos, RedisSettlementLeases(self.redis), policy=policy)

    @cached_property
    def payments(self) -> Payments:
        """Payment links and provider webhooks (the provider HTTP session opens on first use)."""
        s = self.settings
        return Payments(
            self.repos,
            PaymentClient(allow_private=s.allow_private_api_base),
            self.secret_box,
            self.outbox,
            self.records,
            RedisLiveEvents(self.redis),
            self.records,
            base_url=s.base_url,
        )

    def gateway(
        self,
        readiness: Readiness,
        *,
        instance: str = "gateway-0",
        liveness: Liveness | None = None,
        retriever: Any = None,
    ) -> GatewayDeps:
        """What one gateway (the HTTP layer) runs on; the probes come from its process."""
        return GatewayDeps(
            settings=self.settings,
            records=self.records,
            inbox=self.inbox,
            redis=self.redis,
            indexer=self.remotes.indexer,
            readiness=readiness,
            instance=instance,
            liveness=liveness,
            retriever=retriever,
            commerce=self.commerce,
            gaps=self.gaps,
            staff=self.staff,
            catalog=self.catalog_admin,
            stores=self.store_desk(),
            settlements=self.settlements,
            payments=self.payments,
        )

    # -- store platforms ----------------------------------------------------------------------
    @cached_property
    def store_vault(self) -> IntegrationVaultRecords:
        return IntegrationVaultRecords(self.repos, self.secret_box)

    @cached_property
    def store_http(self) -> EgressStoreHttp:
        return EgressStoreHttp(allow_private=self.settings.allow_private_api_base)

    def store_sync(self, indexer: IndexNudge) -> StoreSync:
        """The sync use case, nudging ``indexer`` after each write (the indexer actor passes
        itself; a gateway passes its client of that actor)."""
        s = self.settings
        return StoreSync(
            self.repos,
            self.store_vault,
            self.store_http,
            indexer,
            accounts_bases={"salla": s.salla_accounts_base},
            clients={
                "salla": {"client_id": s.salla_client_id, "client_secret": s.salla_client_secret}
            },
            bounds=SyncBounds(
                interval_s=s.store_sync_interval_s, refresh_margin_s=s.store_refresh_margin_s
            ),
            webhook_base=s.base_url,
        )

    def store_desk(self) -> StoreDesk | None:
        """What the gateway's integration routes and store webhooks use; None without an
        indexer to run the syncs."""
        indexer = self.remotes.indexer
        if indexer is None:
            return None
        start = getattr(indexer, "sync_store", None)
        return StoreDesk(
            self.store_vault,
            self.store_sync(indexer),
            start if callable(start) else (lambda _integration_id: None),
        )

    @cached_property
    def phraser(self) -> Phraser | None:
        """Generative phrasing when ``LLM_BASE_URL`` is set (None: extractive replies only).

        A base URL the egress guard refuses stops the process at start-up rather than
        silently answering without it."""
        s = self.settings
        if not s.llm_base_url:
            return None
        why = check_base_url(s.llm_base_url, allow_private=s.allow_private_api_base)
        if why is not None:
            raise ValueError(f"LLM_BASE_URL must be {why}")
        timeout_s = s.llm_timeout_ms / 1000
        model = OpenAICompatibleModel(
            s.llm_base_url,
            api_key=s.llm_api_key,
            model=s.llm_model,
            timeout_s=timeout_s,
            allow_private=s.allow_private_api_base,
        )
        return Phraser(
            model,
            InProcessTokenBudget(),
            daily_tokens=s.llm_daily_tokens_per_merchant,
            timeout_s=timeout_s,
        )

    def query_embedder(self, model: str) -> Embedder:
        """The process's embedder behind the query-embedding cache (L1 here, L2 on Redis);
        ``model`` names the encoder build so a rebuilt model never reads old vectors."""
        s = self.settings
        if s.query_cache_entries <= 0 and s.query_cache_ttl_s <= 0:
            return self.embedder
        return CachedQueryEmbedder(
            self.embedder,
            model,
            shared=RedisVectorCache(self.redis) if s.query_cache_ttl_s > 0 else None,
            max_entries=s.query_cache_entries,
            ttl_s=s.query_cache_ttl_s,
        )

    def retriever(self, embedder: Embedder | None = None, *, lexicons: int = 256) -> Retriever:
        """The bot's retrieval: one embedding call per question, BM25 + fusion in-process
        over a per-merchant lexical index (LRU of ``lexicons`` merchants)."""
        s = self.settings
        return Retriever(
            embedder or self.embedder,
            self.remotes.vectors,
            LexicalIndexes(self.repos, max_merchants=lexicons),
            results=ResultCache(s.retrieval_cache_entries, s.retrieval_cache_ttl_s),
        )
