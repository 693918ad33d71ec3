"""The one way a benchmark starts the real engine: Ray, Serve, embedded stores, on a throwaway
data dir, with stdout kept free for the benchmark's JSON."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from actors.runtime import Runtime, local_ray_defaults
from engine.config import Settings


@contextlib.contextmanager
def engine_runtime(prefix: str, **overrides: Any) -> Iterator[Runtime]:
    """Backends started on entry (the caller starts the gateway in its own event loop),
    stopped with Ray on exit."""
    base = Settings.from_env()
    settings = base.with_overrides(
        data_dir=Path(tempfile.mkdtemp(prefix=prefix)),
        port=0,
        admin_token="bench-" + secrets.token_hex(8),
        ray_dashboard=False,
        log_level="WARNING",
        models_dir=base.models_dir.resolve(),
        allow_private_api_base=True,  # the fake platforms listen on loopback
        **overrides,
    )
    local_ray_defaults()
    # Ray forwards worker logs to the driver's stdout unless told not to: keep stdout for JSON.
    # "local": a new cluster of its own, never another engine's found on this machine.
    ray.init(address="local", include_dashboard=False, log_to_driver=False, namespace="kaleem")
    runtime = Runtime(settings)
    runtime.start_backends()
    try:
        yield runtime
    finally:
        runtime.stop_backends()
        ray.shutdown()
