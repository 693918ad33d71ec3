"""Data-dir ownership with real processes: the engine lock, the stores lock, orphans, watchdog."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.adapters.datadir import (
    ENGINE_LOCK,
    STORES_LOCK,
    DataDirInUse,
    EngineLock,
    ProcessIdentity,
    StoresLock,
    lock_holders,
    record_processes,
    stale_owners,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0


def _eventually(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


class Child:
    """A Python child running ``code``; it prints one line when it is set up."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline().strip()
        assert self.line, self.proc.stderr.read() if self.proc.stderr else "child said nothing"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for c in made:
        c.kill()


ENGINE = """
import sys, time
from pathlib import Path
from engine.adapters.datadir import EngineLock
lock = EngineLock.acquire(Path(sys.argv[1]), "all")
print("locked", flush=True)
time.sleep(120)
"""

SLEEPER = """
print("up", flush=True)
import time; time.sleep(120)
"""

# A worker of engine argv[2] ("pid:start") that holds the stores lock and ignores its engine.
ORPHAN_WORKER = """
import sys, time
from pathlib import Path
from engine.adapters.datadir import ProcessIdentity, StoresLock
lock = StoresLock.join(Path(sys.argv[1]), ProcessIdentity.parse(sys.argv[2]))
print("joined" if lock else "refused", flush=True)
time.sleep(120)
"""

GUARDED_WORKER = """
import sys, time
from pathlib import Path
from engine.adapters.datadir import OwnerWatchdog, ProcessIdentity, StoresLock
engine = ProcessIdentity.parse(sys.argv[2])
lock = StoresLock.join(Path(sys.argv[1]), engine)
OwnerWatchdog(engine).start()
print("guarded", flush=True)
time.sleep(120)
"""

# Holds the stores lock shared without any record: nothing proves it is ours.
FOREIGN_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH)
print("holding", flush=True)
time.sleep(120)
"""


def _identity(child: Child) -> ProcessIdentity:
    identity = ProcessIdentity.of(child.pid)
    assert identity is not None
    return identity


def test_process_identity_tells_a_reused_pid_apart() -> None:
    me = ProcessIdentity.current()
    assert me.alive() and ProcessIdentity.parse(me.token()) == me
    assert not ProcessIdentity(me.pid, me.start + 1).alive()


def test_a_second_engine_on_a_busy_data_dir_fails_naming_the_holder(
    tmp_path: Path, children: list[Child]
) -> None:
    children.append(holder := Child(ENGINE, str(tmp_path)))
    with pytest.raises(DataDirInUse, match=f"pid {holder.pid} \\(role all\\)"):
        EngineLock.acquire(tmp_path, "all")
    assert stat.S_IMODE((tmp_path / ENGINE_LOCK).stat().st_mode) == 0o600
    assert lock_holders(tmp_path / ENGINE_LOCK) == [holder.pid]
    holder.kill()  # however the holder dies, the kernel drops its lock
    lock = EngineLock.acquire(tmp_path, "workers")
    try:
        assert json.loads((tmp_path / ENGINE_LOCK).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert (tmp_path / ENGINE_LOCK).read_text() == ""  # no stale holder named after release


def test_a_claim_ends_recorded_orphans_of_a_dead_engine(
    tmp_path: Path, children: list[Child]
) -> None:
    children.append(old_engine := Child(SLEEPER))
    old = _identity(old_engine)
    children.append(orphan := Child(ORPHAN_WORKER, str(tmp_path), old.token()))
    children.append(agent := Child(SLEEPER))  # a Ray agent: recorded, holds no lock
    assert orphan.line == "joined"
    record_processes(tmp_path, old, [_identity(agent)], "ray")
    assert stat.S_IMODE((tmp_path / "owners").stat().st_mode) == 0o700
    assert all(
        stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "owners").glob("*.json")
    )
    me = ProcessIdentity.current()
    assert stale_owners(tmp_path, me) == []  # their engine still runs: not orphans
    old_engine.kill()
    assert sorted(p.pid for p in stale_owners(tmp_path, me)) == sorted([orphan.pid, agent.pid])

    lock = StoresLock.claim(tmp_path, me, wait_s=WAIT_S, kill_grace_s=2.0)
    try:
        assert not orphan.alive() and not agent.alive()
        assert list((tmp_path / "owners").glob("*.json")) == []
        assert lock_holders(tmp_path / STORES_LOCK) == [os.getpid()]  # kept, shared
        # A worker of THIS engine can join beside it.
        children.append(worker := Child(ORPHAN_WORKER, str(tmp_path), me.token()))
        assert worker.line == "joined"
    finally:
        lock.release(clear_records_of=me)


def test_a_holder_that_is_not_provably_ours_is_never_signalled(
    tmp_path: Path, children: list[Child]
) -> None:
    children.append(foreign := Child(FOREIGN_HOLDER, str(tmp_path / STORES_LOCK)))
    children.append(reused := Child(SLEEPER))
    # A record naming a live pid with another start time: a reused pid, not our process.
    fake = ProcessIdentity(reused.pid, _identity(reused).start + 1)
    record_processes(tmp_path, ProcessIdentity(1, 1), [fake], "ray")
    me = ProcessIdentity.current()
    assert stale_owners(tmp_path, me) == []
    with pytest.raises(DataDirInUse, match=f"processes {foreign.pid} still hold"):
        StoresLock.claim(tmp_path, me, wait_s=0.5)
    assert foreign.alive() and reused.alive()


def test_a_worker_refuses_to_start_while_an_engine_claims_the_dir(
    tmp_path: Path, children: list[Child]
) -> None:
    me = ProcessIdentity.current()
    import fcntl

    fd = os.open(tmp_path / STORES_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an engine between "no orphans" and "keep it shared"
        children.append(worker := Child(ORPHAN_WORKER, str(tmp_path), me.token()))
        assert worker.line == "refused"
    finally:
        os.close(fd)


def test_the_watchdog_ends_a_worker_when_its_engine_dies(
    tmp_path: Path, children: list[Child]
) -> None:
    children.append(engine := Child(SLEEPER))
    children.append(worker := Child(GUARDED_WORKER, str(tmp_path), _identity(engine).token()))
    assert worker.line == "guarded" and worker.alive()
    engine.kill()  # SIGKILL: no goodbye, no signal to anyone
    _eventually(lambda: not worker.alive(), "the worker exits with its engine")
    assert lock_holders(tmp_path / STORES_LOCK) == []  # and let go of the stores
    assert list((tmp_path / "owners").glob("*.json")) != []  # no cleanup: it just went
    me = ProcessIdentity.current()
    StoresLock.claim(tmp_path, me, wait_s=WAIT_S).release(clear_records_of=me)


def test_records_of_dead_processes_are_pruned_as_workers_join(
    tmp_path: Path, children: list[Child]
) -> None:
    me = ProcessIdentity.current()
    children.append(gone := Child(SLEEPER))
    record_processes(tmp_path, me, [_identity(gone)], "worker")
    gone.kill()
    children.append(worker := Child(ORPHAN_WORKER, str(tmp_path), me.token()))
    assert worker.line == "joined"
    records = sorted(p.name for p in (tmp_path / "owners").glob("*.json"))
    assert records == [f"worker-{worker.pid}.json"]
