"""Scale-out on one machine: a real Ray cluster of four nodes (a head, two worker raylets with
CPUs and one without; ``ray.cluster_utils.Cluster`` in its own process, ``tests.e2e.ray_cluster``)
with ``kaleem serve`` joined to it through ``RAY_ADDRESS``.

Shown, in order:
1. the engine's node-local state (the embedded vector store's actor) sits on the engine's node,
   while conversation hosts and delivery actors are spread over at least two nodes, never onto
   a node that offers no CPUs (a gateway's driver node);
2. a worker node is removed mid-traffic, taking the hosts (and delivery) it ran with it;
3. Ray restarts them on the nodes left, and every customer message that got a 200 is answered
   exactly once: none missing, none twice, and nothing left in the inbox or outbox.

And with embedded stores, a cluster with a node on another machine is refused at start.

No timing assertions: every wait is a bounded wait for a condition.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from engine.adapters.redis import keys
from engine.adapters.redis.server import redis_client
from tests.e2e.ray_cluster import ClusterProcess
from tests.e2e.served import KALEEM, Served, Shop, telegram_shop
from tests.fakes.fake_telegram import FakeTelegram, make_update

pytestmark = pytest.mark.integration

MESSAGES = 60
REMOVE_AFTER = 20  # acknowledged messages before the worker node goes
CONCURRENCY = 6
CHAT_BASE = 8_100_000
HOSTS = 3
PARTITIONS = 8
ANSWER_WAIT_S = 150.0
# Logical CPUs: the box has two real cores shared by everything; Ray only counts these.
HEAD_CPUS = 1
WORKER_CPUS = 1
OTHER_IP = "127.0.0.2"  # a worker bound here is, to Ray, a node on another machine


def _models() -> Path:
    configured = os.environ.get("KALEEM_TEST_MODELS_DIR")
    assert configured, "set KALEEM_TEST_MODELS_DIR (make test does)"
    return Path(configured)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterProcess]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Two worker nodes with CPUs, and one with none: what a gateway's driver node is.
    c = ClusterProcess(HEAD_CPUS, [{"num_cpus": WORKER_CPUS}] * 2 + [{"num_cpus": 0}])
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def engine(cluster: ClusterProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("multinode")
    s = Served(root / "data", _models(), log_path=root / "engine.log")
    s.env["RAY_ADDRESS"] = cluster.address
    s.env["RAY_TMPDIR"] = cluster.tmpdir  # the driver's session files beside the cluster's
    s.env["KALEEM_HOST_ACTORS"] = str(HOSTS)
    s.env["KALEEM_INBOX_PARTITIONS"] = str(PARTITIONS)
    s.start()
    yield s
    if s.proc is not None and s.proc.poll() is None:
        try:
            s.stop()
        except Exception:
            s.proc.kill()


def test_embedded_stores_refuse_a_cluster_spanning_machines(tmp_path: Path) -> None:
    """Records in SQLite, Redis on a unix socket, vectors in files: a host on another machine
    would open stores of its own there. The engine says so and exits instead of starting."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster = ClusterProcess(HEAD_CPUS, [{"num_cpus": 1, "node_ip_address": OTHER_IP}])
    try:
        s = Served(tmp_path / "data", _models())
        s.env["RAY_ADDRESS"] = cluster.address
        s.env["RAY_TMPDIR"] = cluster.tmpdir
        refused = subprocess.run(
            [KALEEM, "serve", "--port", str(s.port), "--data-dir", str(s.data_dir)],
            env=s.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert refused.returncode == 2, refused.stderr[-2000:]
        assert f"nodes on {OTHER_IP}" in refused.stderr
        assert "MONGO_URL, QDRANT_URL and REDIS_URL" in refused.stderr
        assert "Traceback" not in refused.stderr
        # Nothing was placed on the cluster before the refusal.
        assert not [n for n in cluster.actors() if n.startswith("kaleem-")]
    finally:
        cluster.close()


@pytest.fixture(scope="module")
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture(scope="module")
async def shop(engine: Served, telegram: FakeTelegram) -> Shop:
    return await telegram_shop(engine.url, engine.data_dir, telegram.base_url, "Cluster Shop")


def _workers_of(placement: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Hosts and delivery actors -> the node each runs on."""
    return {
        name: row["node"]
        for name, row in placement.items()
        if name.startswith(("kaleem-host-", "kaleem-delivery-"))
    }


async def _until(condition: Any, what: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    try:
        async with asyncio.timeout(timeout):
            while not await condition():  # noqa: ASYNC110 - polls another process' state
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:.0f}s: {what}") from None


async def _drained(redis_url: str) -> bool:
    r = redis_client(redis_url, max_connections=2)
    try:
        inbox = sum([int(await r.xlen(keys.inbox_stream(p))) for p in range(PARTITIONS)])
        outbox = int(await r.xlen(keys.outbox_stream("telegram")))
        return inbox == 0 and outbox == 0
    finally:
        await r.aclose()


async def test_a_node_lost_mid_traffic_loses_no_reply_and_duplicates_none(
    cluster: ClusterProcess, engine: Served, shop: Shop, telegram: FakeTelegram
) -> None:
    head, (*workers, no_cpus) = cluster.head, cluster.workers
    before = cluster.actors()

    # 1. Node-local state on the engine's node; stateless workers over several nodes.
    assert before["kaleem-stores"]["node"] == head
    spread = _workers_of(before)
    assert {f"kaleem-host-{i}" for i in range(HOSTS)} <= set(spread)
    assert "kaleem-delivery-telegram" in spread
    assert len(set(spread.values())) >= 2, spread
    assert set(spread.values()) & set(workers), "nothing runs on a worker node"
    assert no_cpus not in spread.values(), spread  # a gateway's node never hosts conversations

    # The worker node to lose: the one running the most of them (Telegram delivery first).
    def weight(node_id: str) -> tuple[bool, int]:
        names = [n for n, nid in spread.items() if nid == node_id]
        return "kaleem-delivery-telegram" in names, len(names)

    victim = max(workers, key=weight)
    lost = sorted(n for n, nid in spread.items() if nid == victim)
    assert lost, spread

    # 2. Traffic: one message per conversation, waves of webhooks; the node goes mid-stream.
    statuses: dict[int, int] = {}
    removal: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession() as http:

        async def deliver(i: int) -> None:
            update = make_update(i, CHAT_BASE + i, f"hello, do you have item {i}?")
            async with http.post(
                f"{engine.url}/webhooks/telegram/{shop.channel_id}",
                data=orjson.dumps(update),
                headers={"X-Telegram-Bot-Api-Secret-Token": shop.secret},
            ) as resp:
                await resp.read()
                statuses[i] = resp.status

        todo = list(range(1, MESSAGES + 1))
        while todo:
            wave, todo = todo[:CONCURRENCY], todo[CONCURRENCY:]
            await asyncio.gather(*(deliver(i) for i in wave))
            if not removal and len(statuses) >= REMOVE_AFTER:
                # In a thread: the next waves go out while the node's processes are killed.
                removal.append(asyncio.create_task(asyncio.to_thread(cluster.remove, victim)))
        assert removal, "the node was never removed"
        await removal[0]
        # The gateway and Redis live on the head: the webhook never noticed the node going.
        assert set(statuses.values()) == {200}, statuses

    # 3. Every message answered, once, after Ray restarted what the node ran elsewhere.
    for i in range(1, MESSAGES + 1):
        await telegram.wait_for_messages(CHAT_BASE + i, 1, timeout=ANSWER_WAIT_S)
    redis_url = (engine.data_dir / "redis.url").read_text().strip()

    async def drained() -> bool:
        return await _drained(redis_url)

    await _until(drained, "inbox and outbox drained", timeout=ANSWER_WAIT_S)
    replies = Counter({i: len(telegram.sent_to(CHAT_BASE + i)) for i in range(1, MESSAGES + 1)})
    assert {i: n for i, n in replies.items() if n != 1} == {}, "not answered exactly once"

    # Every actor the node ran is restarted elsewhere; one whose channel kind this traffic
    # never used may still be starting on a loaded box when the last reply is in.
    async def restarted() -> bool:
        states = await asyncio.to_thread(cluster.actors)
        return all(states[name]["state"] == "ALIVE" for name in lost)

    await _until(restarted, "the lost actors alive again", timeout=ANSWER_WAIT_S)
    after = cluster.actors()
    now = _workers_of(after)
    assert victim not in now.values(), now
    assert no_cpus not in now.values(), now
    for name in lost:
        assert after[name]["state"] == "ALIVE", after[name]
        assert after[name]["restarts"] >= 1, after[name]
    assert len(set(now.values())) >= 2, now  # still spread over what is left
