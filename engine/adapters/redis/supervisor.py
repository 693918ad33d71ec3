"""Keeps the embedded Redis running: restarts it from its AOF when it dies, within a budget.

Nothing else restarts a dead embedded Redis, and every webhook fails while it is down. The
supervisor owns the server from a thread of its own (never the gateway's event loop): it
waits on the child, and when it exits unasked it starts it again on the same socket/port and
data dir, so every client's next connection reaches the new server and the AOF brings back
every acknowledged write (``appendfsync always``: an acknowledged write was fsynced before
its reply).

Restarts are rate-bounded: more than ``max_restarts`` within ``window_s`` means something is
wrong that restarting will not fix (a full disk, a corrupt AOF), so the supervisor gives up and
says so (``gave_up``); the gateway's ``/healthz`` then answers 503 and the orchestrator restarts
the engine. Between attempts it backs off exponentially (``backoff_base_s`` doubling up to
``backoff_max_s``), so a crash loop does not spin.

A server that is alive but stops answering (SIGSTOP, a wedged disk) is found by a PING every
second and killed after three misses, which turns it into the case above.

All calls on the ``EmbeddedRedis`` happen on the supervisor thread: the first start too, so
the child's parent-death signal is tied to a thread that lives as long as the server should.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)

__all__ = ["RedisSupervisor", "SupervisedServer", "SupervisorPolicy", "SupervisorState"]


class SupervisedServer(Protocol):
    """What the supervisor needs of a server (``EmbeddedRedis`` in production)."""

    @property
    def pid(self) -> int | None: ...

    def start(self) -> str: ...

    def stop(self, timeout_s: float = 3.0) -> None: ...

    def wait_exit(self, timeout_s: float) -> int | None: ...

    def ping(self, timeout_s: float) -> bool: ...

    def kill(self) -> None: ...


class SupervisorState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"  # gave up: the engine must be restarted by its orchestrator
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_base_s: float = 0.05
    backoff_max_s: float = 5.0
    # How often the waiting thread looks up from the child to see whether stop() was called.
    poll_s: float = 0.2
    # A server that is alive but does not answer PING (stopped, wedged) this many times in a
    # row, checked every health_every_s with health_timeout_s each, is killed and restarted:
    # its clients would otherwise hang on it (they have no socket timeout: reads may block).
    health_every_s: float = 1.0
    health_timeout_s: float = 2.0
    health_failures: int = 3

    def backoff_s(self, recent_failures: int) -> float:
        """Delay before the restart that follows the ``recent_failures``-th recent failure:
        short for the first (clients are waiting), doubling while the deaths continue."""
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (max(recent_failures, 1) - 1))


class RedisSupervisor:
    """Runs ``server`` on a daemon thread and restarts it when it dies; see the module doc."""

    def __init__(
        self,
        server: SupervisedServer,
        policy: SupervisorPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], bool] | None = None,
        name: str = "redis-supervisor",
    ) -> None:
        """``pause(seconds)`` waits out a backoff and says whether ``stop()`` was called
        meanwhile (default: waiting on the stop event; tests record the delays instead)."""
        self._server = server
        self._policy = policy or SupervisorPolicy()
        self._clock = clock
        self._name = name
        self._stop = threading.Event()
        self._pause = pause or self._stop.wait
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = SupervisorState.STOPPED
        self._url: str | None = None
        self._start_error: BaseException | None = None
        self._failures: deque[float] = deque()
        self.restarts = 0
        self.failure_reason = ""

    # -- observation (any thread) ------------------------------------------------------------
    @property
    def state(self) -> SupervisorState:
        with self._lock:
            return self._state

    @property
    def gave_up(self) -> bool:
        return self.state is SupervisorState.FAILED

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the supervised server has not started")
        return self._url

    def liveness(self) -> str | None:
        """None while the server is up or being restarted; why not, once it gave up."""
        if not self.gave_up:
            return None
        return self.failure_reason or "gave up"

    # -- control (the owner's thread) --------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> str:
        """Start the server on the supervisor thread; return its URL once it answers.

        A first start that fails raises here (there is nothing to supervise yet).
        """
        if self._thread is not None:
            return self.url
        self._set(SupervisorState.STARTING)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"embedded redis did not start within {timeout_s}s")
        if self._start_error is not None:
            self._thread.join(timeout_s)
            self._thread = None
            raise self._start_error
        return self.url

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop supervising and stop the server (on the supervisor thread). Idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.error("redis supervisor did not stop within %.0fs", timeout_s)

    # -- the supervisor thread ---------------------------------------------------------------
    def _set(self, state: SupervisorState) -> None:
        with self._lock:
            self._state = state

    def _run(self) -> None:
        try:
            self._url = self._server.start()
        except BaseException as exc:
            self._start_error = exc
            self._set(SupervisorState.STOPPED)
            self._started.set()
            return
        self._set(SupervisorState.RUNNING)
        self._started.set()
        try:
            self._supervise()
        except Exception as exc:  # a bug here must not leave a server nobody watches
            log.exception("redis supervisor crashed")
            self._give_up(f"supervisor crashed: {type(exc).__name__}")
        finally:
            try:
                self._server.stop()
            except Exception:
                log.exception("stopping the embedded redis failed")
            if self.state is not SupervisorState.FAILED:
                self._set(SupervisorState.STOPPED)

    def _supervise(self) -> None:
        next_check = self._clock() + self._policy.health_every_s
        missed = 0
        while not self._stop.is_set():
            code = self._server.wait_exit(self._policy.poll_s)
            if self._stop.is_set():
                return
            if code is None:
                if self._clock() >= next_check:
                    missed = 0 if self._server.ping(self._policy.health_timeout_s) else missed + 1
                    next_check = self._clock() + self._policy.health_every_s
                    if missed >= self._policy.health_failures:
                        log.error(
                            "embedded redis pid %s did not answer PING %d times; killing it",
                            self._server.pid,
                            missed,
                        )
                        missed = 0
                        self._server.kill()
                continue
            now = self._clock()
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self._policy.window_s:
                self._failures.popleft()
            recent = len(self._failures)
            if recent > self._policy.max_restarts:
                self._give_up(
                    f"redis exited {recent} times within {self._policy.window_s:.0f}s "
                    f"(last exit code {code})"
                )
                return
            self._set(SupervisorState.RESTARTING)
            delay = self._policy.backoff_s(recent)
            log.error(
                "embedded redis exited (code %s); restarting from its AOF in %.2fs "
                "(%d of %d restarts allowed per %.0fs)",
                code,
                delay,
                recent,
                self._policy.max_restarts,
                self._policy.window_s,
            )
            if self._pause(delay) or self._stop.is_set():
                return
            try:
                self._url = self._server.start()
            except Exception as exc:  # counted as the next failure by wait_exit's answer
                log.error("embedded redis restart failed: %s", exc)
                continue
            self.restarts += 1
            next_check = self._clock() + self._policy.health_every_s
            self._set(SupervisorState.RUNNING)
            log.warning(
                "embedded redis restarted (pid %s, restart %d)", self._server.pid, self.restarts
            )

    def _give_up(self, reason: str) -> None:
        self.failure_reason = reason
        self._set(SupervisorState.FAILED)
        log.critical("giving up on the embedded redis: %s; restart the engine", reason)
