"""The composition root: one place that builds every component from ``Settings``.

Start order: the data dir's locks (one engine per data dir, never beside an orphan of an
earlier run: ``engine.adapters.datadir``), models (built and verified), Redis (embedded and
supervised unless ``REDIS_URL``, which must fsync what it acknowledges), Ray, Serve
applications, the stores actor (embedded unless ``MONGO_URL``/``QDRANT_URL``), the indexer,
the conversation host pool and the connector actors, then the gateway. ``stop`` tears it all
down in reverse, flushing the embedded stores, so a clean restart keeps every record.

Ownership applies to a local cluster (no ``RAY_ADDRESS``): its workers join the stores lock
and exit with the engine (``actors/ownership.py``). With ``RAY_ADDRESS`` the actors may run on
other machines, where a lock in this data dir means nothing: Ray itself ends the actors when
their owner (the workers process) dies, and such a deployment uses ``MONGO_URL``,
``QDRANT_URL`` and ``REDIS_URL``; the engine lock still stops a second engine here.

Placement over several nodes (``actors/placement.py``): the embedded stores actor is pinned to
this process' node, where its files are; conversation hosts and delivery actors spread over
every node with CPUs, and Ray restarts them on the nodes left when one is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import ray
from aiohttp import web
from ray import serve
from ray.serve.exceptions import RayServeException

from actors.conversation_host import ConversationHostActor
from actors.delivery import DeliveryActor
from actors.indexer import IndexerActor, IndexerClient
from actors.loops import settle_heap
from actors.ownership import HOOK as OWNER_HOOK
from actors.placement import on_this_node, other_machines, spread
from actors.remotes import container
from actors.stores import EmbeddedStoresActor
from connectors import registry
from engine.adapters.datadir import (
    EngineLock,
    ProcessIdentity,
    StoresLock,
    make_private_dir,
    record_processes,
    write_private,
)
from engine.adapters.records import Records
from engine.adapters.redis.durability import check_durability
from engine.adapters.redis.server import EmbeddedRedis, redis_client
from engine.adapters.redis.supervisor import RedisSupervisor, SupervisorPolicy
from engine.adapters.secrets import load_or_create_key
from engine.bootstrap import Container
from engine.config import ConfigError, Settings
from engine.domain.catalog import KNOWLEDGE, PRODUCTS
from engine.http.app import create_app
from models.registry import ensure_models
from models.threaded import ThreadedEmbedder
from observability import tracing
from serve_apps.embedder import build_embedder

log = logging.getLogger(__name__)

RAY_NAMESPACE = "kaleem"
ATTACH_TIMEOUT_S = 300.0
EMBED_MODEL = "e5"
EMBED_DIM = 384
# Per-merchant BM25 indexes a gateway keeps for admin search (LRU); staff search is rarer than
# customer questions, so fewer than a conversation host keeps.
GATEWAY_LEXICONS = 32


def local_ray_defaults() -> None:
    """Ray's environment defaults for a cluster this process starts (an operator's own values
    win).

    Ray starts its workers at nice 15 so a batch job's tasks yield to the driver. Here the
    workers are the reply path (conversation hosts, the embedder, the stores, delivery) and
    the driver is the gateway, so at nice 15 a burst of gateway work (a webchat flood, a login
    storm) took the CPU from every reply in flight: ``bench/abuse.py --rounds 3``, median ratio
    of a customer's TTFR p95 under attack to idle, 18.3 at nice 15 and 4.7 at nice 0 (same box,
    back to back).
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")


@dataclass
class Runtime:
    settings: Settings
    embedded_redis: EmbeddedRedis | None = None
    redis_supervisor: RedisSupervisor | None = None
    stores_actor: Any | None = None
    hosts: list[Any] = field(default_factory=list)
    delivery: Any | None = None  # the Telegram actor (kept for callers of the spine)
    deliveries: dict[str, Any] = field(default_factory=dict)
    indexer: Any | None = None
    embedder: Any | None = None
    runner: web.AppRunner | None = None
    port: int = 0
    records: Records | None = None
    _owns_ray: bool = False
    _owns_actors: bool = True
    # Taken by ``kaleem serve`` before Ray is imported (fail fast); else by start_backends.
    engine_lock: EngineLock | None = None
    _started: bool = False
    _stores_lock: StoresLock | None = None
    _me: ProcessIdentity | None = None

    # -- synchronous start (before the event loop serves anything) ---------------------------
    def start_backends(self, *, ray_init: bool = True) -> None:
        s = self.settings
        if s.port == 0:
            self.settings = s = s.with_overrides(port=free_port(s.host))
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if s.role == "gateway":
            self.settings = s = _shared_from_data_dir(s)
            self._attach(ray_init=ray_init)
            return
        # Before anything opens a file here: one engine per data dir (DataDirInUse names the
        # other), and a local cluster's stores only once no process of an earlier run holds them.
        if self.engine_lock is None:
            self.engine_lock = EngineLock.acquire(s.data_dir, s.role)
        make_private_dir(s.data_dir)  # records, AOF, vectors, keys: this user's only
        # And everything this process and its children (Redis, Ray's raylet and workers, the
        # embedded vector store) create from here on: every tenant's data passes through them.
        os.umask(0o077)
        self._started = True
        self._me = ProcessIdentity.current()
        local_cluster = ray_init and not ray.is_initialized() and not s.ray_address
        if local_cluster:
            self._stores_lock = StoresLock.claim(s.data_dir, self._me, wait_s=s.owner_wait_s)
        ensure_models(s.models_dir, names=(EMBED_MODEL,))
        if not s.redis_url:
            self.embedded_redis = EmbeddedRedis(s.data_dir / "redis", parent_death_any_thread=True)
            self.redis_supervisor = RedisSupervisor(
                self.embedded_redis,
                SupervisorPolicy(
                    max_restarts=s.redis_max_restarts,
                    window_s=s.redis_restart_window_s,
                    backoff_base_s=s.redis_restart_backoff_s,
                ),
            )
            self.settings = s = s.with_overrides(redis_url=self.redis_supervisor.start())
        else:
            check_durability(s.redis_url, s.redis_durability)
        if not s.secret_key:
            self.settings = s = s.with_overrides(secret_key=load_or_create_key("", s.data_dir))
        if ray_init and not ray.is_initialized():
            local_ray_defaults()
            kwargs: dict[str, Any] = {
                "include_dashboard": s.ray_dashboard,
                "logging_level": logging.WARNING,
                "log_to_driver": True,
            }
            if s.ray_dashboard:
                kwargs["dashboard_host"] = "127.0.0.1"
                kwargs["dashboard_port"] = s.ray_dashboard_port
            if s.ray_address:
                kwargs["address"] = s.ray_address
            if local_cluster:
                # Without an address Ray joins whatever cluster it finds on this machine (another
                # engine's, a user's `ray start`): its actors carry the same names, so this engine
                # would fail on them or, worse, talk to another data dir's stores.
                kwargs["address"] = "local"
                kwargs["runtime_env"] = {
                    "env_vars": {
                        "KALEEM_ENGINE_OWNER": self._me.token(),
                        "KALEEM_DATA_DIR": str(s.data_dir.resolve()),
                    },
                    "worker_process_setup_hook": OWNER_HOOK,
                }
            before = _descendants()
            ray.init(namespace=RAY_NAMESPACE, **kwargs)
            self._owns_ray = True
            if local_cluster:
                # Ray's agents outlive a SIGKILLed driver: recorded, the next engine ends them.
                started = [p for pid, p in _descendants().items() if pid not in before]
                record_processes(s.data_dir, self._me, started, "ray")
            # Gateway replicas on this machine find the cluster and Redis through the data dir.
            write_private(s.data_dir / "ray.address", ray.get_runtime_context().gcs_address)
            write_private(s.data_dir / "redis.url", s.redis_url)
        self._owns_actors = True
        embedded = not (s.mongo_url and s.qdrant_url and self.embedded_redis is None)
        if s.ray_address and embedded and (elsewhere := other_machines()):
            raise ConfigError(
                "the embedded stores are files on this machine, but the Ray cluster has "
                f"nodes on {', '.join(elsewhere)}: set MONGO_URL, QDRANT_URL and REDIS_URL"
            )
        serve.start(proxy_location="Disabled", logging_config={"enable_access_log": False})
        self.embedder = serve.run(
            build_embedder(
                str(s.models_dir.resolve()),
                EMBED_MODEL,
                threads=s.embedder_threads,
                passage_threads=s.embedder_passage_threads,
            ),
            name="embedder",
            route_prefix=None,
        )
        if not s.qdrant_url:
            self.stores_actor = EmbeddedStoresActor.options(  # type: ignore[attr-defined]
                name="kaleem-stores", **on_this_node()
            ).remote(str((s.data_dir / "stores").resolve()))
        self.indexer = IndexerActor.options(  # type: ignore[attr-defined]
            name="kaleem-indexer"
        ).remote(s, self.stores_actor, self.embedder)
        self.hosts = [
            ConversationHostActor.options(  # type: ignore[attr-defined]
                name=f"kaleem-host-{i}", **spread()
            ).remote(s, i, self.stores_actor, self.embedder)
            for i in range(s.host_actors)
        ]
        self.deliveries = {
            kind: DeliveryActor.options(  # type: ignore[attr-defined]
                name=f"kaleem-delivery-{kind}", **spread()
            ).remote(s, self.stores_actor, kind)
            for kind in registry.provider_kinds()
        }
        self.delivery = self.deliveries["telegram"]

    def liveness(self) -> str | None:
        """Why this process can no longer work (the Redis supervisor gave up), else None."""
        return self.redis_supervisor.liveness() if self.redis_supervisor is not None else None

    def _attach(self, *, ray_init: bool) -> None:
        """A gateway replica: join the cluster and find the actors a workers process owns."""
        s = self.settings
        if not (s.ray_address and s.redis_url and s.secret_key):
            raise ConfigError(
                "KALEEM_ROLE=gateway needs RAY_ADDRESS, REDIS_URL and KALEEM_SECRET_KEY "
                "shared with the workers process"
            )
        check_durability(s.redis_url, s.redis_durability)  # this process acknowledges webhooks
        if ray_init and not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(address=s.ray_address, namespace=RAY_NAMESPACE, logging_level=logging.WARNING)
            self._owns_ray = True
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while True:
            try:
                self.embedder = serve.get_app_handle("embedder")
                if not s.qdrant_url:
                    self.stores_actor = ray.get_actor("kaleem-stores")
                self.indexer = ray.get_actor("kaleem-indexer")
                self.hosts = [ray.get_actor(f"kaleem-host-{i}") for i in range(s.host_actors)]
                self.deliveries = {
                    kind: ray.get_actor(f"kaleem-delivery-{kind}")
                    for kind in registry.provider_kinds()
                }
                break
            except (ValueError, RayServeException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)  # the workers process is still starting: not on an event loop
        self.delivery = self.deliveries["telegram"]
        self._owns_actors = False

    async def run_workers(self) -> None:
        """The workers role: wait until every actor answers; the caller then idles."""
        tracing.configure_tracing(self.settings, "kaleem-workers")
        await self._wait_ready()
        await self._prepare_stores(container(self.settings, self.stores_actor, self.embedder))

    @staticmethod
    async def _prepare_stores(c: Container) -> None:
        await c.remotes.vectors.ensure_collection(PRODUCTS, EMBED_DIM)
        await c.remotes.vectors.ensure_collection(KNOWLEDGE, EMBED_DIM)
        await c.records.ensure_indexes()

    # -- async part: wait for readiness, start the gateway ------------------------------------
    async def start_gateway(self) -> int:
        s = self.settings
        assert self.indexer is not None
        tracing.configure_tracing(s, "kaleem-gateway")
        await self._wait_ready()
        c = container(s, self.stores_actor, self.embedder, IndexerClient(self.indexer))
        await self._prepare_stores(c)
        self.records = c.records
        deps = c.gateway(
            self.readiness,
            liveness=self.liveness,
            # The bot's own retrieval (same model, same BM25 fusion), so the admin search shows
            # merchants exactly what their customers get; the query is embedded in a thread
            # here by default, a Serve hop costing as much as the model (models/threaded.py).
            retriever=c.retriever(
                ThreadedEmbedder(s.models_dir.resolve(), EMBED_MODEL, threads=2)
                if s.gateway_local_embedder
                else None,
                lexicons=GATEWAY_LEXICONS,
            ),
        )
        self.runner = web.AppRunner(create_app(deps), access_log=None, shutdown_timeout=5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, s.host, s.port)
        await site.start()
        self.port = s.port
        settle_heap()
        return self.port

    async def _wait_ready(self) -> None:
        refs = [h.ready.remote() for h in self.hosts]
        assert self.delivery is not None and self.indexer is not None
        refs += [d.ready.remote() for d in self.deliveries.values()]
        refs.append(self.indexer.ready.remote())
        if self.stores_actor is not None:
            refs.append(self.stores_actor.ready.remote())
        await asyncio.gather(*refs)

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}

        async def check(name: str, coro: Any) -> None:
            try:
                checks[name] = bool(await asyncio.wait_for(coro, timeout=3))
            except Exception:
                checks[name] = False

        redis = redis_client(self.settings.redis_url, max_connections=2)
        try:
            await asyncio.gather(
                check("redis", redis.ping()),
                check("embedder", self.embedder.ready.remote() if self.embedder else _false()),
                check("delivery", self.delivery.ready.remote() if self.delivery else _false()),
                check(
                    "stores",
                    self.stores_actor.ready.remote() if self.stores_actor else _true(),
                ),
                *(check(f"host-{i}", h.ready.remote()) for i, h in enumerate(self.hosts)),
            )
        finally:
            await redis.aclose()
        return checks

    # -- stop -------------------------------------------------------------------------------
    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if not self._owns_actors:
            return  # a gateway replica leaves the shared actors to their owner
        for actor in [*self.hosts, *self.deliveries.values()]:
            if actor is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(actor.shutdown.remote(), timeout=10)
        if self.stores_actor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.stores_actor.close.remote(), timeout=10)

    def stop_backends(self) -> None:
        if self._owns_actors and not self._started:
            return  # nothing was started (e.g. the data dir was busy): touch nothing
        if not self._owns_actors:
            self.hosts = []
            if self._owns_ray:
                with contextlib.suppress(Exception):
                    ray.shutdown()  # disconnects this driver; the cluster keeps running
            return
        for actor in [*self.hosts, *self.deliveries.values(), self.indexer, self.stores_actor]:
            if actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(actor)
        self.hosts = []
        if ray.is_initialized():  # serve.shutdown() would start a cluster just to stop it
            with contextlib.suppress(Exception):
                serve.shutdown()  # type: ignore[no-untyped-call]
        if self._owns_ray:
            with contextlib.suppress(Exception):
                ray.shutdown()
        if self.redis_supervisor is not None:
            self.redis_supervisor.stop()
            self.redis_supervisor = None
        elif self.embedded_redis is not None:
            self.embedded_redis.stop()
        self.embedded_redis = None
        if self._stores_lock is not None:
            self._stores_lock.release(clear_records_of=self._me)
            self._stores_lock = None
        if self.engine_lock is not None:
            self.engine_lock.release()
            self.engine_lock = None
        self._started = False


def _shared_from_data_dir(s: Settings) -> Settings:
    """For a gateway replica beside a workers process on one machine (same data dir): the Ray
    address, the Redis URL and the at-rest key the workers process wrote there. In a cluster,
    set RAY_ADDRESS, REDIS_URL and KALEEM_SECRET_KEY instead."""
    changes: dict[str, object] = {}
    for field_name, file_name in (("ray_address", "ray.address"), ("redis_url", "redis.url")):
        path = s.data_dir / file_name
        if not getattr(s, field_name) and path.exists():
            changes[field_name] = path.read_text().strip()
    if not s.secret_key and (s.data_dir / "secret.key").exists():
        changes["secret_key"] = load_or_create_key("", s.data_dir)
    return s.with_overrides(**changes) if changes else s


def _descendants() -> dict[int, ProcessIdentity]:
    out: dict[int, ProcessIdentity] = {}
    for child in psutil.Process().children(recursive=True):
        identity = ProcessIdentity.of(child.pid)
        if identity is not None:
            out[child.pid] = identity
    return out


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _true() -> bool:
    return True


async def _false() -> bool:
    return False


def ensure_admin_token(settings: Settings) -> tuple[Settings, bool]:
    """The operator token: from the environment, else generated once and kept in the data dir."""
    if settings.admin_token:
        return settings, False
    path = Path(settings.data_dir) / "admin.token"
    if path.exists():
        return settings.with_overrides(admin_token=path.read_text().strip()), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return settings.with_overrides(admin_token=token), True
