"""Connector actors: one per channel kind, each owns outbound delivery for that kind.

The actor is a thin Ray shell around ``engine.services.delivery.DeliveryWorker`` with the kind's
``ChannelSender`` and the platform's rate rules enforced through Redis (shared with every other
process), so running two of them, or scaling out gateways, never exceeds a platform limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray

from actors import metrics_backend
from actors.loops import keep_running, settle_heap
from actors.remotes import container
from connectors import registry
from engine.adapters import egress
from engine.adapters.providers import CachedChannels, ChannelSender
from engine.adapters.redis.ratelimits import RedisRateLimiter
from engine.bootstrap import delivery_bounds, send_limits
from engine.config import Settings
from engine.domain.messages import OutboundReply
from engine.services.delivery import CircuitBreaker, DeliveryWorker
from observability import logging_setup, tracing

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class DeliveryActor:
    def __init__(self, settings: Settings, stores_actor: Any | None, kind: str) -> None:
        service = f"kaleem-delivery-{kind}"
        logging_setup.configure(settings.log_level, settings.log_json, service=service)
        tracing.configure_tracing(settings, service)
        metrics_backend.bind(f"delivery-{kind}")
        c = container(settings, stores_actor, None)
        self._records = c.records
        self._kind = kind
        self._session = egress.session(allow_private=settings.allow_private_api_base)
        self._tasks: set[asyncio.Task[None]] = set()
        spec = registry.KINDS[kind]
        rules = spec.send_rules(send_limits(settings))
        self._worker = DeliveryWorker(
            c.outbox_consumer(kind, f"{kind}-0"),
            c.outbox,
            ChannelSender(
                spec,
                self._session,
                CachedChannels(self._records),
                timeout_s=settings.delivery_send_timeout_s,
                allow_private=settings.allow_private_api_base,
            ),
            RedisRateLimiter(c.redis, kind, rules),
            max_attempts=settings.delivery_max_attempts,
            on_delivered=self._delivered,
            breaker=CircuitBreaker(cooldown_s=settings.circuit_cooldown_s),
            bounds=delivery_bounds(settings),
        )
        self._task = asyncio.get_running_loop().create_task(
            keep_running(self._worker.run, f"{kind} delivery")
        )
        settle_heap()

    def _delivered(self, reply: OutboundReply, provider_ids: str, attempts: int) -> None:
        """Record the provider ids so later status webhooks land on this reply (off path)."""
        if len(self._tasks) > 1000:
            return  # records are best-effort; delivery itself is already marked sent
        task = asyncio.get_running_loop().create_task(self._record(reply, provider_ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, reply: OutboundReply, provider_ids: str) -> None:
        try:
            for index, pmid in enumerate(p for p in provider_ids.split(",") if p):
                await self._records.record_delivery(
                    reply.merchant_id,
                    reply.channel_id,
                    pmid,
                    {
                        "outbox_id": reply.outbox_id,
                        "part": index,
                        "conversation_key": reply.conversation_key,
                        "status": "sent",
                    },
                )
        except Exception:
            log.exception("recording delivery failed", extra={"outbox_id": reply.outbox_id})

    async def ready(self) -> bool:
        return not self._task.done()

    async def stats(self) -> dict[str, int]:
        return {"delivered": self._worker.delivered, "dead_letters": self._worker.dead}

    async def shutdown(self) -> None:
        await self._worker.stop()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._session.close()
        await asyncio.to_thread(tracing.force_flush, 2000)
