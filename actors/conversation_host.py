"""A pool member hosting many virtual conversation actors (see ``engine.services.hosting``).

The actor starts its consumer loop from ``__init__`` (Ray async actors have a running loop
there), so after a crash Ray's restart alone brings it back: the new incarnation re-reads its
own pending inbox entries and restores each conversation from its checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from actors import metrics_backend
from actors.loops import keep_running, settle_heap
from actors.remotes import container
from engine.adapters.records import Records
from engine.adapters.redis import keys
from engine.adapters.redis.live_events import RedisLiveEvents
from engine.adapters.redis.subscription import Subscription
from engine.config import Settings
from engine.domain.conversation import MerchantProfile
from engine.domain.dialogue import replies
from engine.domain.dialogue.turns import TurnService
from engine.services.hosting import CommittedTurn, ConversationHostCore
from engine.services.projections import TurnProjector
from models.registry import BUILD_VERSION
from observability import logging_setup, metrics, tracing

_NO_MATCH = frozenset({replies.no_match("ar"), replies.no_match("en")})

log = logging.getLogger(__name__)


class CachedMerchants:
    """L1 cache of merchant profiles: read on nearly every turn, changed rarely.

    A profile edit reaches every host as a change notice (``forget``); the TTL bounds
    staleness only when a notice was lost (Redis restarting)."""

    def __init__(self, records: Records, ttl_s: float = 60.0) -> None:
        self._records = records
        self._ttl = ttl_s
        self._items: dict[str, tuple[float, MerchantProfile | None]] = {}
        self.hits = 0
        self.misses = 0

    async def profile(self, merchant_id: str) -> MerchantProfile | None:
        now = time.monotonic()
        hit = self._items.get(merchant_id)
        if hit is not None and now - hit[0] < self._ttl:
            self.hits += 1
            metrics.CACHE.labels("merchant_profile", "l1", "hit").inc()
            return hit[1]
        self.misses += 1
        metrics.CACHE.labels("merchant_profile", "l1", "miss").inc()
        value = await self._records.profile(merchant_id)
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[merchant_id] = (now, value)
        return value

    def forget(self, merchant_id: str) -> None:
        self._items.pop(merchant_id, None)

    async def on_notice(self, _channel: str, data: bytes) -> None:
        """A ``Subscription`` callback: the message is the id of the merchant that changed."""
        self.forget(data.decode(errors="replace"))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class ConversationHostActor:
    def __init__(
        self,
        settings: Settings,
        index: int,
        stores_actor: Any | None,
        embedder: Any,
    ) -> None:
        logging_setup.configure(settings.log_level, settings.log_json, service="kaleem-host")
        tracing.configure_tracing(settings, "kaleem-host")
        metrics_backend.bind(f"conversation-host-{index}")
        self._settings = settings
        self._index = index
        self._passivated_seen = 0
        self._inference_s = 0.0
        self._turn_s = 0.0
        self._turns = 0
        c = container(settings, stores_actor, embedder)
        self._records = c.records
        self._merchants = CachedMerchants(self._records)
        self._notices = Subscription(
            settings.redis_url, keys.merchant_changes(), self._merchants.on_notice
        )
        self._notices_task = asyncio.get_running_loop().create_task(self._notices.start())
        # Repeated questions skip the model: L1 in this process, L2 shared on Redis.
        self._query_embedder = c.query_embedder(f"e5-b{BUILD_VERSION}")
        # Message records, the carts list and agents' live events, off the reply path.
        self._projector = TurnProjector(self._records, RedisLiveEvents(c.redis))
        self._projector.start()
        # One Serve call per question (the embedding): BM25 + fusion run here, over a
        # per-merchant lexical index.
        self._payments = c.payments  # its provider HTTP session closes with the host
        self._retriever = c.retriever(self._query_embedder)
        self._core = ConversationHostCore(
            c.inbox_consumer(index),
            c.checkpoints,
            TurnService(
                self._retriever,
                commerce=c.commerce,
                gaps=c.gaps,
                phraser=c.phraser,
                payments=self._payments,
            ),
            self._merchants,
            idle_passivate_s=settings.idle_passivate_s,
            max_turns_per_merchant=settings.host_turns_per_merchant,
            observer=self._observe,
        )
        self._task = asyncio.get_running_loop().create_task(
            keep_running(self._core.run, "conversation host")
        )
        self._started = time.time()
        settle_heap()

    async def _observe(self, turn: CommittedTurn) -> None:
        result, turn_s = turn.result, turn.turn_s
        reply = result.reply
        stats, host = self._core.stats(), str(self._index)
        metrics.CONVERSATIONS_ACTIVE.labels(host).set(stats["active"])
        passivated = stats["passivated"]
        metrics.CONVERSATIONS_PASSIVATED.labels(host).inc(passivated - self._passivated_seen)
        self._passivated_seen = passivated
        if reply is not None:
            self._turns += 1
            self._inference_s += result.inference_s
            self._turn_s += turn_s
            metrics.TURN_LATENCY.labels(reply.channel_kind).observe(turn_s)
            metrics.REPLIES.labels(reply.channel_kind, metrics.bounded_intent(reply.intent)).inc()
            if reply.handoff:
                metrics.HANDOFFS.labels(reply.channel_kind).inc()
            if reply.text in _NO_MATCH:
                metrics.UNANSWERED.labels(reply.channel_kind).inc()
        await self._projector(turn)

    async def ready(self) -> bool:
        return not self._task.done()

    async def stats(self) -> dict[str, Any]:
        s: dict[str, Any] = dict(self._core.stats())
        s.update(
            index=self._index,
            running=not self._task.done(),
            inference_s_total=self._inference_s,
            turn_s_total=self._turn_s,
            observed_turns=self._turns,
            merchant_cache_hits=self._merchants.hits,
            merchant_cache_misses=self._merchants.misses,
            query_cache=dict(getattr(self._query_embedder, "counts", {})),
            retrieval_cache=self._retriever.cache_counts,
            projected_turns=self._projector.projected,
            live_published=self._projector.live_published,
            live_dropped=self._projector.live_dropped,
        )
        return s

    async def passivate_idle(self) -> int:
        return self._core.passivate_idle()

    async def shutdown(self) -> None:
        await self._core.stop()
        await self._notices.stop()
        self._task.cancel()
        await self._projector.stop()
        await self._payments.close()
        await asyncio.to_thread(tracing.force_flush, 2000)
