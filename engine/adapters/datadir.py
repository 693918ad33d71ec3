"""Who owns a data directory: one engine at a time, and never beside an orphan of an earlier one.

The embedded stores (Redis, the vector shard, the document store) are files that exactly one
set of processes may open. Two locks (``flock``, mode 0600) say who that is:

* ``engine.lock`` — exclusive, held by the engine process (``kaleem serve``, roles all and
  workers) for its whole life. A second engine on the same directory fails at once with
  :class:`DataDirInUse`, naming the holder's pid. The kernel drops the lock when the holder
  dies, however it dies, so a crash never leaves the directory "busy".
* ``stores.lock`` — shared, held by every process that opens the stores (each Ray worker of a
  local cluster joins it as it starts, see ``actors/ownership.py``). A starting engine takes it
  exclusively before it opens anything: that succeeds only when no process of an earlier run
  still holds it, so the new engine never runs beside an orphan. It then keeps it shared.

Orphans are ended, not just waited for, when they are provably ours: each holder records
``owners/<pid>.json`` with its pid, its start time (``/proc/<pid>/stat`` start ticks, so a
reused pid never matches) and the engine it belongs to; the engine also records the Ray
processes it started (agents outlive a SIGKILLed driver). A claiming engine terminates the
recorded processes of other engines that are still alive with the same start time, then waits
(bounded) for the exclusive lock; what it cannot prove is ours it never signals.

No Ray here, no I/O at import.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "ENGINE_LOCK",
    "STORES_LOCK",
    "DataDirInUse",
    "EngineLock",
    "OwnerWatchdog",
    "ProcessIdentity",
    "StoresLock",
    "lock_holders",
    "make_private_dir",
    "record_processes",
    "stale_owners",
    "write_private",
]

ENGINE_LOCK = "engine.lock"
STORES_LOCK = "stores.lock"
OWNERS_DIR = "owners"
FILE_MODE = 0o600
DIR_MODE = 0o700
MAX_RECORDS = 4096  # a bound on what a claim reads; far above any real worker count


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process, not just a pid: the start time tells a reused pid apart."""

    pid: int
    start: int

    @classmethod
    def current(cls) -> ProcessIdentity:
        me = cls.of(os.getpid())
        if me is None:  # pragma: no cover - /proc always has us on Linux
            raise RuntimeError("cannot read this process' own start time")
        return me

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The live process with this pid now (None if there is none, or it is a zombie)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[-1].split()
        # fields[0] is field 3 (state); start time is field 22 of proc(5).
        if len(fields) < 20 or fields[0] in ("Z", "X"):
            return None
        return cls(pid, int(fields[19]))

    def alive(self) -> bool:
        return ProcessIdentity.of(self.pid) == self

    def token(self) -> str:
        return f"{self.pid}:{self.start}"

    @classmethod
    def parse(cls, token: str) -> ProcessIdentity:
        pid, _, start = token.partition(":")
        return cls(int(pid), int(start))


class DataDirInUse(RuntimeError):
    """Another engine (or an orphan of one) holds the data directory."""

    def __init__(self, data_dir: Path, detail: str) -> None:
        super().__init__(f"data dir {data_dir} is in use: {detail}")
        self.data_dir = data_dir


def _open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # an older file may have been created with looser bits
    return fd


def _read_fd(fd: int, limit: int = 4096) -> dict[str, Any]:
    try:
        raw = os.pread(fd, limit, 0)
        data = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_fd(fd: int, data: dict[str, Any]) -> None:
    blob = json.dumps(data).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, blob, 0)


def lock_holders(path: Path) -> list[int]:
    """Pids holding a ``flock`` on ``path`` (from ``/proc/locks``; empty where unavailable)."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return []
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: list[int] = []
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  READ 1234 fd:01:5678 0 EOF" (blocked waiters have a "->" field)
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK" or parts[5] != wanted:
            continue
        with contextlib.suppress(ValueError):
            pids.append(int(parts[4]))
    return sorted(set(pids))


class EngineLock:
    """``DATA_DIR/engine.lock``, exclusive for the engine process' life (see the module doc)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, role: str) -> EngineLock:
        path = data_dir / ENGINE_LOCK
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_fd(fd)
            os.close(fd)
            pid = holder.get("pid") or ", ".join(map(str, lock_holders(path))) or "unknown"
            since = holder.get("since")
            when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
            raise DataDirInUse(
                data_dir,
                f"kaleem serve pid {pid} (role {holder.get('role', '?')}){when} holds {path}; "
                "stop it first or use another --data-dir",
            ) from None
        me = ProcessIdentity.current()
        _write_fd(fd, {"pid": me.pid, "start": me.start, "role": role, "since": time.time()})
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the lock


def _owners_dir(data_dir: Path) -> Path:
    d = data_dir / OWNERS_DIR
    d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return d


def write_private(path: Path, text: str) -> None:
    """Replace a small file atomically with one only this user can read (0600, whatever the
    umask): the data dir's ``redis.url`` and ``ray.address`` let whoever reads them reach
    every tenant's queues and the cluster."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_private_dir(path: Path) -> None:
    """The data dir (or one of its parts) for this user only, also when it already existed."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _write_record(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _records(data_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    d = data_dir / OWNERS_DIR
    if not d.is_dir():
        return []
    out: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted(d.glob("*.json"))[:MAX_RECORDS]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append((path, data))
    return out


def record_processes(
    data_dir: Path, engine: ProcessIdentity, processes: Iterable[ProcessIdentity], kind: str
) -> None:
    """Record processes this engine started (so a later engine may end them if orphaned)."""
    d = _owners_dir(data_dir)
    for p in processes:
        _write_record(
            d / f"{kind}-{p.pid}.json",
            {"pid": p.pid, "start": p.start, "engine": engine.token(), "kind": kind},
        )


def stale_owners(data_dir: Path, engine: ProcessIdentity) -> list[ProcessIdentity]:
    """Recorded processes of OTHER engines that are still alive with the recorded start time."""
    out: list[ProcessIdentity] = []
    for _, data in _records(data_dir):
        try:
            p = ProcessIdentity(int(data["pid"]), int(data["start"]))
            owner = ProcessIdentity.parse(str(data["engine"]))
        except (KeyError, TypeError, ValueError):
            continue
        if owner == engine or p.pid == os.getpid() or owner.alive():
            continue  # ours, or its engine still runs (then engine.lock is not ours either)
        if p.alive():
            out.append(p)
    return out


def _clear_records(data_dir: Path, keep_engine: ProcessIdentity | None = None) -> None:
    for path, data in _records(data_dir):
        if keep_engine is not None and data.get("engine") == keep_engine.token():
            continue
        path.unlink(missing_ok=True)


def _prune_dead(data_dir: Path) -> None:
    for path, data in _records(data_dir):
        try:
            alive = ProcessIdentity(int(data["pid"]), int(data["start"])).alive()
        except (KeyError, TypeError, ValueError):
            alive = False
        if not alive:
            path.unlink(missing_ok=True)


def terminate(processes: list[ProcessIdentity], grace_s: float) -> list[ProcessIdentity]:
    """SIGTERM, then SIGKILL after ``grace_s``; each signal re-checks the identity first.

    Returns the processes still alive at the end (normally none).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in processes:
            if p.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p.pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(p.alive() for p in processes):
            time.sleep(0.02)
        processes = [p for p in processes if p.alive()]
        if not processes:
            break
    return processes


class StoresLock:
    """``DATA_DIR/stores.lock``: shared by the stores' processes; see the module doc."""

    def __init__(self, path: Path, fd: int, record: Path | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._record = record

    @classmethod
    def claim(
        cls,
        data_dir: Path,
        engine: ProcessIdentity,
        *,
        wait_s: float,
        kill_grace_s: float = 3.0,
    ) -> StoresLock:
        """Take the lock exclusively (ending recorded orphans, waiting at most ``wait_s``), then
        keep it shared. Raises :class:`DataDirInUse` naming the holders if they stay."""
        path = data_dir / STORES_LOCK
        fd = _open_lock(path)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                stale = stale_owners(data_dir, engine)
                if stale:
                    log.warning(
                        "ending %d orphaned process(es) of an earlier engine on %s: %s",
                        len(stale),
                        data_dir,
                        ", ".join(str(p.pid) for p in stale),
                    )
                    terminate(stale, kill_grace_s)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holders = ", ".join(map(str, lock_holders(path))) or "unknown"
                        raise DataDirInUse(
                            data_dir,
                            f"processes {holders} still hold {path} after {wait_s:.0f}s and "
                            "are not provably ours to stop; end them first",
                        ) from None
                    time.sleep(0.05)
            _clear_records(data_dir)  # exclusive: every record left is of a process now gone
            fcntl.flock(fd, fcntl.LOCK_SH)  # this process opens the stores as well
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    @classmethod
    def join(cls, data_dir: Path, engine: ProcessIdentity) -> StoresLock | None:
        """A worker's shared hold, recorded; None when an engine is claiming the directory
        (then the engine this worker belongs to is gone or going, and it must not start)."""
        path = data_dir / STORES_LOCK
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        me = ProcessIdentity.current()
        record = _owners_dir(data_dir) / f"worker-{me.pid}.json"
        _write_record(
            record, {"pid": me.pid, "start": me.start, "engine": engine.token(), "kind": "worker"}
        )
        _prune_dead(data_dir)  # workers restarted by Ray over a long run leave records behind
        return cls(path, fd, record)

    def release(self, *, clear_records_of: ProcessIdentity | None = None) -> None:
        fd, self._fd = self._fd, None
        if self._record is not None:
            self._record.unlink(missing_ok=True)
        if clear_records_of is not None:
            data_dir = self.path.parent
            for path, data in _records(data_dir):
                if data.get("engine") == clear_records_of.token():
                    path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)


class OwnerWatchdog:
    """Calls ``on_gone`` (default: exit this process at once) when ``owner`` has exited.

    Waits on a pidfd (Linux >= 5.3: woken by the kernel the moment the owner exits), else
    polls every ``poll_s``. The identity is checked after the pidfd is opened, so a pid reused
    in between is never mistaken for the owner.
    """

    def __init__(
        self,
        owner: ProcessIdentity,
        on_gone: Callable[[], None] | None = None,
        *,
        poll_s: float = 0.5,
    ) -> None:
        self.owner = owner
        self._on_gone = on_gone or _exit_now
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._run, name="owner-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pidfd: int | None = None
        try:
            pidfd = os.pidfd_open(self.owner.pid)
        except (AttributeError, OSError):
            pidfd = None
        try:
            if self.owner.alive():
                if pidfd is not None:
                    poller = select.poll()
                    poller.register(pidfd, select.POLLIN)
                    while not poller.poll(None):
                        pass
                else:
                    while self.owner.alive():
                        time.sleep(self._poll_s)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        log.warning("engine process %d is gone; this process exits", self.owner.pid)
        self._on_gone()


def _exit_now() -> None:
    """No cleanup: nothing of an abandoned engine may write the data directory again."""
    os._exit(1)
