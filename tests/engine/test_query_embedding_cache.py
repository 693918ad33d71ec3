"""The query-embedding cache returns the model's own vectors, runs the model once per distinct
question across processes (L1 here, L2 on a real embedded Redis), stays bounded, and keeps
answering when Redis does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis

from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.redis.vector_cache import RedisVectorCache
from engine.services.embedding_cache import CachedQueryEmbedder
from engine.services.ports import FloatMatrix
from models.threaded import ThreadedEmbedder
from tests.models.model_dirs import shared_models_dir


class SeenByModel:
    """The real in-process e5 encoder, recording which texts actually reached it."""

    def __init__(self, models_dir: Path) -> None:
        self._model = ThreadedEmbedder(models_dir)
        self.texts: list[str] = []

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        self.texts += texts
        return await self._model.embed_queries(texts)

    async def embed_passages(self, texts: list[str]) -> FloatMatrix:
        return await self._model.embed_passages(texts)


# The production timeout (0.25 s) turns a slow Redis answer into a miss by design; on a loaded
# CI box the first read of a fresh server can take longer, and a miss here would rerun the model.
SLOW_BOX_S = 10.0


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_models_dir(tmp_path_factory)


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedRedis, aioredis.Redis]]:
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis_client(server.start())
    try:
        yield server, client
    finally:
        await client.aclose()
        server.stop()


async def test_repeats_skip_the_model_and_get_its_vectors(
    models_dir: Path, redis: tuple[EmbeddedRedis, aioredis.Redis]
) -> None:
    _, client = redis
    model = SeenByModel(models_dir)
    host_a = CachedQueryEmbedder(model, "e5-test", shared=RedisVectorCache(client, SLOW_BOX_S))
    questions = ["كم رسوم الشحن؟", "do you have white sneakers?"]
    first = await host_a.embed_queries(questions)
    assert np.allclose(first, await ThreadedEmbedder(models_dir).embed_queries(questions))
    # The same question again, with other spacing, and twice in one batch: no model run.
    again = await host_a.embed_queries(["كم  رسوم الشحن؟ ", "كم رسوم الشحن؟"])
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[0])
    assert model.texts == questions
    assert host_a.counts["l1_hit"] == 2
    # Another host (empty L1) reads the vector from Redis instead of running the model.
    host_b = CachedQueryEmbedder(model, "e5-test", shared=RedisVectorCache(client, SLOW_BOX_S))
    shared = await host_b.embed_queries(["do you have white sneakers?"])
    assert np.array_equal(shared[0], first[1])
    assert model.texts == questions
    assert host_b.counts == {
        "l1_hit": 0,
        "l1_miss": 1,
        "l1_coalesced": 0,
        "l2_hit": 1,
        "l2_miss": 0,
    }
    # A rebuilt model is another key space: its first question runs the model.
    rebuilt = CachedQueryEmbedder(model, "e5-other", shared=RedisVectorCache(client, SLOW_BOX_S))
    await rebuilt.embed_queries(["do you have white sneakers?"])
    assert model.texts == [*questions, "do you have white sneakers?"]
    assert await client.ttl(f"kaleem:qemb:{rebuilt.key('do you have white sneakers?')}") > 0


async def test_l1_is_bounded_lru(models_dir: Path) -> None:
    model = SeenByModel(models_dir)
    cache = CachedQueryEmbedder(model, "e5-test", max_entries=2)
    # ``Container.retriever(embedder or default)`` must not fall back to the bare model.
    assert cache
    for text in ["one", "two", "one", "three"]:
        await cache.embed_queries([text])
    assert cache.size == 2
    await cache.embed_queries(["one"])  # recently used: kept
    await cache.embed_queries(["two"])  # least recently used: evicted, the model runs again
    assert model.texts == ["one", "two", "three", "two"]


async def test_answers_from_the_model_when_redis_is_gone(
    models_dir: Path, redis: tuple[EmbeddedRedis, aioredis.Redis]
) -> None:
    server, client = redis
    model = SeenByModel(models_dir)
    cache = CachedQueryEmbedder(model, "e5-test", shared=RedisVectorCache(client, timeout_s=0.5))
    server.stop()
    vectors = await cache.embed_queries(["phone charger"])
    assert vectors.shape[0] == 1 and model.texts == ["phone charger"]
    assert cache.counts["l2_miss"] == 1


class Gated(SeenByModel):
    """The model, held until the test lets it run (so several turns miss at once)."""

    def __init__(self, models_dir: Path) -> None:
        super().__init__(models_dir)
        self.gate = asyncio.Event()
        self.fail_next = False

    async def embed_queries(self, texts: list[str]) -> FloatMatrix:
        self.texts += texts
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("replica died")
        return await self._model.embed_queries(texts)


async def test_a_burst_of_one_question_runs_the_model_once(models_dir: Path) -> None:
    model = Gated(models_dir)
    cache = CachedQueryEmbedder(model, "e5-test")
    burst = [asyncio.create_task(cache.embed_queries(["كم رسوم الشحن؟"])) for _ in range(20)]
    await asyncio.sleep(0.05)  # every turn is waiting now
    model.gate.set()
    vectors = await asyncio.gather(*burst)
    assert model.texts == ["كم رسوم الشحن؟"]
    assert all(np.array_equal(v, vectors[0]) for v in vectors)
    assert cache.counts["l1_coalesced"] == 19


async def test_the_waiters_fetch_on_their_own_when_the_first_fetch_fails(
    models_dir: Path,
) -> None:
    model = Gated(models_dir)
    model.fail_next = True
    cache = CachedQueryEmbedder(model, "e5-test")
    first = asyncio.create_task(cache.embed_queries(["phone charger"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.embed_queries(["phone charger"]))
    await asyncio.sleep(0.01)
    model.gate.set()
    with pytest.raises(ConnectionError):
        await first
    (vector,) = await second  # answered: the model ran again for it
    assert model.texts == ["phone charger", "phone charger"]
    assert np.allclose(
        vector, (await ThreadedEmbedder(models_dir).embed_queries(["phone charger"]))[0]
    )


async def test_a_cancelled_first_turn_does_not_cancel_the_fetch_others_wait_for(
    models_dir: Path,
) -> None:
    model = Gated(models_dir)
    cache = CachedQueryEmbedder(model, "e5-test")
    first = asyncio.create_task(cache.embed_queries(["white sneakers"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.embed_queries(["white sneakers"]))
    await asyncio.sleep(0.01)
    first.cancel()
    model.gate.set()
    (vector,) = await second
    assert first.cancelled()
    assert np.allclose(
        vector, (await ThreadedEmbedder(models_dir).embed_queries(["white sneakers"]))[0]
    )
    assert model.texts == ["white sneakers"]  # the fetch went on for the one still waiting
