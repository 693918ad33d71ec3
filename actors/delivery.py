"""Connector actor: owns outbound delivery for one channel kind."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import ray
from engine.storage.redis_server import redis_client

from actors.wiring import document_store
from engine.config import Settings
from engine.delivery import DeliveryWorker, RateLimits
from engine.keys import OUTBOX_GROUP, outbox_stream
from engine.queues import Outbox, StreamConsumer
from engine.records import Records
from engine.secrets import SecretBox, load_or_create_key
from engine.senders import CachedChannels, TelegramSender

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class TelegramDeliveryActor:
    def __init__(self, settings: Settings, stores_actor: Any | None) -> None:
        logging.basicConfig(level=settings.log_level)
        redis = redis_client(settings.redis_url)
        box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir))
        records = Records(document_store(settings, stores_actor), box)
        self._session = aiohttp.ClientSession()
        self._worker = DeliveryWorker(
            StreamConsumer(redis, [outbox_stream("telegram")], OUTBOX_GROUP, "telegram-0"),
            Outbox(redis),
            TelegramSender(self._session, CachedChannels(records)),
            RateLimits(settings.telegram_per_chat_per_s, settings.telegram_global_per_s),
            max_attempts=settings.delivery_max_attempts,
        )
        self._task = asyncio.get_running_loop().create_task(self._worker.run())

    async def ready(self) -> bool:
        return not self._task.done()

    async def stats(self) -> dict[str, int]:
        return {"delivered": self._worker.delivered, "dead_letters": self._worker.dead}

    async def shutdown(self) -> None:
        await self._worker.stop()
        self._task.cancel()
        await self._session.close()
