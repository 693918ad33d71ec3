"""The embedded Redis' supervisor: restart, backoff, give-up; then the real server SIGKILLed."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.redis.supervisor import RedisSupervisor, SupervisorPolicy, SupervisorState
from tests.storage.test_datadir import WAIT_S, _eventually


class FakeServer:
    """Dies when told (``kill``), or right after each start while ``crash_loop`` is on."""

    def __init__(self, *, crash_loop: bool = False, fail_first_start: bool = False) -> None:
        self.starts = 0
        self.stops = 0
        self.crash_loop = crash_loop
        self.fail_first_start = fail_first_start
        self._dead = threading.Event()
        self._dead.set()
        self.start_threads: list[str] = []

    @property
    def pid(self) -> int | None:
        return None if self._dead.is_set() else 1000 + self.starts

    def start(self) -> str:
        self.starts += 1
        self.start_threads.append(threading.current_thread().name)
        if self.fail_first_start and self.starts == 1:
            raise RuntimeError("redis-server exited with 1: bad config")
        if not self.crash_loop:
            self._dead.clear()
        return "unix:///tmp/fake.sock?db=0"

    def stop(self, timeout_s: float = 3.0) -> None:
        self.stops += 1
        self._dead.set()

    def wait_exit(self, timeout_s: float) -> int | None:
        return 137 if self._dead.wait(timeout_s) else None

    def kill(self) -> None:
        self._dead.set()

    def ping(self, timeout_s: float) -> bool:
        self.pings += 1
        return not self.wedged

    wedged = False
    pings = 0


@pytest.fixture
def recorded_pauses() -> list[float]:
    return []


def _supervisor(
    server: FakeServer, pauses: list[float], clock: object = time.monotonic, **policy: float
) -> RedisSupervisor:
    def pause(seconds: float) -> bool:
        pauses.append(seconds)
        return False

    return RedisSupervisor(
        server,
        SupervisorPolicy(poll_s=0.01, **policy),  # type: ignore[arg-type]
        clock=clock,  # type: ignore[arg-type]
        pause=pause,
        name="test-supervisor",
    )


def test_a_dead_server_is_restarted_on_the_supervisor_thread(recorded_pauses: list[float]) -> None:
    server = FakeServer()
    sup = _supervisor(server, recorded_pauses)
    assert sup.start() == "unix:///tmp/fake.sock?db=0"
    assert sup.state is SupervisorState.RUNNING and sup.liveness() is None
    server.kill()
    _eventually(lambda: sup.restarts == 1 and sup.state is SupervisorState.RUNNING, "restart")
    server.kill()
    _eventually(lambda: sup.restarts == 2, "second restart")
    assert server.starts == 3
    assert set(server.start_threads) == {"test-supervisor"}  # PDEATHSIG ties to this thread
    assert sup.liveness() is None
    sup.stop()
    assert sup.state is SupervisorState.STOPPED and server.stops == 1
    sup.stop()  # idempotent


def test_backoff_doubles_within_a_window_and_is_capped() -> None:
    policy = SupervisorPolicy(backoff_base_s=0.1, backoff_max_s=1.0)
    assert [policy.backoff_s(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_restarts_wait_out_the_backoff(recorded_pauses: list[float]) -> None:
    server = FakeServer()
    sup = _supervisor(server, recorded_pauses, max_restarts=10, backoff_base_s=0.5)
    sup.start()
    for n in range(1, 5):
        server.kill()
        _eventually(lambda n=n: sup.restarts == n, f"restart {n}")
    sup.stop()
    assert recorded_pauses == [0.5, 1.0, 2.0, 4.0]


def test_a_crash_loop_gives_up_and_turns_liveness_off(recorded_pauses: list[float]) -> None:
    server = FakeServer(crash_loop=True)
    sup = _supervisor(server, recorded_pauses, max_restarts=3, window_s=3600)
    sup.start()
    _eventually(lambda: sup.gave_up, "give up")
    assert server.starts == 4  # the first start and 3 restarts; the 4th death is one too many
    assert sup.state is SupervisorState.FAILED
    reason = sup.liveness()
    assert reason is not None and "4 times" in reason
    sup.stop()
    assert sup.state is SupervisorState.FAILED  # stopping does not hide that it gave up


def test_deaths_outside_the_window_do_not_count(recorded_pauses: list[float]) -> None:
    now = [0.0]
    server = FakeServer()
    sup = _supervisor(server, recorded_pauses, clock=lambda: now[0], max_restarts=2, window_s=60)
    sup.start()
    for n in range(1, 7):  # six deaths, each a window apart: never more than one recent
        now[0] += 61.0
        server.kill()
        _eventually(lambda n=n: sup.restarts == n, f"restart {n}")
    assert not sup.gave_up and recorded_pauses == [0.05] * 6  # always "the first" again
    sup.stop()


def test_a_server_that_stops_answering_is_killed_and_restarted(
    recorded_pauses: list[float],
) -> None:
    server = FakeServer()
    sup = _supervisor(server, recorded_pauses, health_every_s=0.0, health_failures=3)
    sup.start()
    _eventually(lambda: server.pings >= 3, "health checks run")
    assert sup.restarts == 0  # answering: left alone
    server.wedged = True
    _eventually(lambda: sup.restarts == 1, "a wedged server is replaced")
    server.wedged = False
    pings = server.pings
    _eventually(lambda: server.pings >= pings + 3, "checks go on")
    assert sup.restarts == 1 and sup.state is SupervisorState.RUNNING
    sup.stop()


def test_a_failing_first_start_raises_to_the_caller(recorded_pauses: list[float]) -> None:
    server = FakeServer(fail_first_start=True)
    sup = _supervisor(server, recorded_pauses)
    with pytest.raises(RuntimeError, match="bad config"):
        sup.start()
    assert sup.state is SupervisorState.STOPPED


# -- the real server --------------------------------------------------------------------------
@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, RedisSupervisor]]:
    server = EmbeddedRedis(tmp_path / "redis", parent_death_any_thread=True)
    sup = RedisSupervisor(server, SupervisorPolicy(max_restarts=3))
    sup.start()
    yield server, sup
    sup.stop()


async def test_sigkilled_redis_comes_back_from_its_aof_at_the_same_url(
    supervised: tuple[EmbeddedRedis, RedisSupervisor],
) -> None:
    server, sup = supervised
    url = sup.url
    first_pid = server.pid
    assert first_pid is not None
    assert stat.S_IMODE(server.pidfile.stat().st_mode) == 0o600
    r = redis_client(url, max_connections=4)
    try:
        for i in range(100):
            await r.set(f"acked:{i}", i)  # each answered only after its fsync (always)
        await r.xadd("kaleem:inbox:0", {"m": "hello"})
        os.kill(first_pid, signal.SIGKILL)
        _eventually(lambda: sup.restarts == 1 and server.pid != first_pid, "restart")
        assert sup.url == url
        # The same client reconnects by itself; every acknowledged write is back.
        values = [await r.get(f"acked:{i}") for i in range(100)]
        assert values == [str(i).encode() for i in range(100)]
        assert await r.xlen("kaleem:inbox:0") == 1
    finally:
        await r.aclose()
    assert sup.state is SupervisorState.RUNNING and sup.liveness() is None


def test_a_stopped_redis_is_killed_and_comes_back(tmp_path: Path) -> None:
    """SIGSTOP: alive but silent, so nothing exits; the PING checks find it."""
    server = EmbeddedRedis(tmp_path / "redis", parent_death_any_thread=True)
    sup = RedisSupervisor(
        server,
        SupervisorPolicy(health_every_s=0.2, health_timeout_s=0.3, health_failures=2),
    )
    sup.start()
    try:
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        _eventually(lambda: sup.restarts == 1 and server.pid != pid, "restart")
        assert server.ping(5.0)
    finally:
        sup.stop()


def test_a_server_killed_over_and_over_is_given_up_on(
    supervised: tuple[EmbeddedRedis, RedisSupervisor],
) -> None:
    server, sup = supervised
    for n in range(4):  # max_restarts=3 within the window: the fourth death is the last
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        if n < 3:
            _eventually(lambda n=n: sup.restarts == n + 1, f"restart {n + 1}")
    _eventually(lambda: sup.gave_up, "give up")
    assert server.pid is None or server.wait_exit(0) is not None


async def test_a_consumer_rereads_its_pending_entries_once_redis_is_back(tmp_path: Path) -> None:
    """Work that failed while Redis was down is picked up at once, not by the idle reclaim."""
    import redis

    from engine.adapters.redis.queues import StreamConsumer

    server = EmbeddedRedis(tmp_path / "redis")
    r = redis_client(server.start(), max_connections=4)
    try:
        consumer = StreamConsumer(r, ["s"], "g", "c1", reclaim_every_s=3600)
        await consumer.setup()
        await r.xadd("s", {"m": b'{"n": 1}'})
        taken = await consumer.read(block_ms=10)
        assert [e.payload for e in taken] == [{"n": 1}]  # taken, never acknowledged
        assert await consumer.read(block_ms=10) == []
        pid = server.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert server.wait_exit(WAIT_S) is not None
        with pytest.raises(redis.ConnectionError):
            await consumer.read(block_ms=10)
        server.start()  # same socket, from the AOF
        again = await consumer.read(block_ms=10)
        assert [e.entry_id for e in again] == [e.entry_id for e in taken]
        await consumer.ack(again)
        assert await consumer.read(block_ms=10) == []
    finally:
        await r.aclose()
        server.stop()
