"""Ray workers of a local cluster: join the data dir's stores lock and die with their engine.

``Runtime`` starts a local cluster with this module's :func:`on_worker_start` as the job's
``worker_process_setup_hook`` and ``KALEEM_ENGINE_OWNER``/``KALEEM_DATA_DIR`` in the job's
environment, so every worker process of the job (actors, the Serve controller and replicas)
runs it once, before any actor code:

* it holds ``stores.lock`` shared for its life and records itself in ``owners/`` — a later
  engine cannot take the lock while it lives, and may end it because the record proves it is
  ours (see ``engine.adapters.datadir``);
* a watchdog thread exits the process the moment the engine process (pid + start time) is
  gone. Without it, measured here, a SIGKILLed ``kaleem serve`` left workers running for
  seconds, and nothing but raylet's death stopped them.

A worker whose engine is already gone, or that finds a newer engine claiming the directory,
exits at once instead of starting.
"""

from __future__ import annotations

import logging
import os
import sys

from engine.adapters.datadir import OwnerWatchdog, ProcessIdentity, StoresLock
from engine.config import ConfigError, Settings

log = logging.getLogger(__name__)

HOOK = "actors.ownership.on_worker_start"
_held: list[StoresLock] = []  # the lock lives as long as the process


def on_worker_start() -> None:
    try:
        settings = Settings.from_env()
        if not settings.engine_owner:
            return
        engine = ProcessIdentity.parse(settings.engine_owner)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"kaleem worker: unusable engine owner setting ({exc}); not guarded\n")
        return
    if not engine.alive():
        sys.stderr.write(f"kaleem worker: engine process {engine.pid} is gone; exiting\n")
        os._exit(1)
    lock = StoresLock.join(settings.data_dir, engine)
    if lock is None:
        sys.stderr.write("kaleem worker: a newer engine is claiming the data dir; exiting\n")
        os._exit(1)
    _held.append(lock)
    OwnerWatchdog(engine).start()
