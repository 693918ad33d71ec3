"""The one settings object: configuration enters the process here, from the environment, once.

Everything else receives a ``Settings`` instance (the composition root builds it and passes it
to actors at creation), so no module reads ``os.environ`` on its own.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


class ConfigError(ValueError):
    """A setting is present but unusable; raised at start-up with the variable's name."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


ROLES = ("all", "workers", "gateway")
REDIS_DURABILITY_POLICIES = ("require", "warn")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (or single addresses), checked here so a typo fails at start."""
    out: list[str] = []
    for raw in (env.get(name) or "").split(","):
        if not raw.strip():
            continue
        try:
            out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
        except ValueError as exc:
            raise ConfigError(f"{name}: {raw.strip()!r} is not an address or CIDR") from exc
    return tuple(out)


def _role(value: str) -> str:
    if value not in ROLES:
        raise ConfigError(f"KALEEM_ROLE must be one of {', '.join(ROLES)}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Process configuration. Frozen and picklable: it travels to Ray actors as-is."""

    host: str = "127.0.0.1"
    port: int = 8080
    # "all": one process runs everything; "workers": Ray actors + Serve only (the owner);
    # "gateway": an extra gateway replica attaching to a running workers process via Ray.
    role: str = "all"
    data_dir: Path = field(default_factory=lambda: Path(".kaleem"))
    public_base_url: str = ""
    admin_token: str = ""
    secret_key: str = ""
    mongo_url: str = ""
    mongo_db: str = "kaleem"
    qdrant_url: str = ""
    redis_url: str = ""
    models_dir: Path = field(default_factory=lambda: Path(".kaleem/models"))
    telegram_api_base: str = "https://api.telegram.org"
    host_actors: int = 2
    embedder_threads: int = 1
    # Indexing batches (not live queries) run on their own ONNX session: 2 threads measured
    # 1.6x the products/s of 1 on this 2-core box (bench/index.py --engine).
    embedder_passage_threads: int = 2
    # Admin product search embeds its query in the gateway process (see models/threaded.py).
    gateway_local_embedder: bool = True
    # How often the indexer sweeps for records whose latest version is not indexed yet (the
    # API also nudges it after each write; the sweep covers crashes and outages).
    index_reconcile_s: float = 5.0
    inbox_partitions: int = 8
    max_body_bytes: int = 256 * 1024
    max_import_bytes: int = 50 * 1024 * 1024
    # Uploads one gateway reads at once (one per merchant at a time) and a merchant's catalogue
    # quota: one tenant's uploads cannot take the memory or the indexer everyone shares.
    import_concurrency: int = 2
    max_products_per_merchant: int = 200_000
    ray_address: str = ""
    ray_dashboard: bool = True
    ray_dashboard_port: int = 8265
    idle_passivate_s: float = 300.0
    playground_timeout_s: float = 20.0
    telegram_per_chat_per_s: float = 1.0
    telegram_global_per_s: float = 30.0
    delivery_max_attempts: int = 8
    # A conversation checkpoint expires this long after its last turn; webchat/playground
    # dedupe keys live minutes (no provider redelivers those frames).
    conversation_idle_ttl_s: int = 30 * 24 * 3600
    # Turns one merchant may run at once on a conversation host (the rest wait their turn).
    host_turns_per_merchant: int = 8
    webchat_dedupe_ttl_s: int = 15 * 60
    # What one channel / merchant may hold of the delivery worker every merchant of a kind
    # shares (engine/services/delivery.py DeliveryBounds): calls in flight, buffered entries,
    # and the deadline of one provider call.
    delivery_max_inflight_per_channel: int = 4
    delivery_max_inflight_per_merchant: int = 16
    delivery_max_queued_per_channel: int = 512
    delivery_send_timeout_s: float = 10.0
    # Channels: Meta Graph API base/version and per-platform send rules.
    graph_api_base: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"
    # Provider calls a merchant can aim (a channel's api_base) go to the kinds' production
    # hosts plus these, and never to a private address; tests and local development set
    # allow_private_api_base to reach fakes on loopback (engine/adapters/egress.py).
    provider_hosts: tuple[str, ...] = ()
    allow_private_api_base: bool = False
    whatsapp_per_number_per_s: float = 80.0
    whatsapp_pair_per_s: float = 1 / 6
    whatsapp_pair_burst: float = 10.0
    meta_per_page_per_s: float = 300.0
    circuit_cooldown_s: float = 1.0
    # Optional generative phrasing (engine/services/phrasing.py): off while llm_base_url is "".
    llm_base_url: str = ""
    llm_api_key: str = ""
    llm_model: str = ""
    llm_daily_tokens_per_merchant: int = 200_000
    llm_timeout_ms: int = 1500
    log_level: str = "INFO"
    log_json: bool = True
    # Tracing: OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT; off when empty), a
    # JSON-lines span file every process appends to (tests, debugging), head sampling ratio.
    otel_endpoint: str = ""
    trace_file: str = ""
    trace_sample_ratio: float = 1.0
    # Admin API: JWT signing secret (derived from secret_key when unset), CORS
    # allow-list, rate limits per key and per IP (requests per window), login throttles.
    jwt_secret: str = ""
    cors_origins: tuple[str, ...] = ()
    api_rate_per_key: int = 1200
    api_rate_per_ip: int = 3000
    api_rate_window_s: int = 60
    # Webhooks per client address and window (api_rate_window_s): all of them (platforms send
    # every merchant's updates from a few addresses, so this is generous) and the ones that
    # failed (unknown channel, bad signature, malformed: what an attacker sends).
    webhook_rate_per_address: int = 30_000
    webhook_failures_per_address: int = 600
    login_max_failures: int = 5
    # Agents' live sockets (/api/v1/live) per merchant and per client address, per gateway.
    live_max_per_merchant: int = 50
    live_max_per_address: int = 20
    login_max_per_ip: int = 300
    # Proxies whose X-Forwarded-For is believed (nginx in front of the gateways): the client is
    # the right-most hop that is not one of them. Empty: the TCP peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Redis durability and supervision. An external REDIS_URL must fsync every
    # acknowledged write ("require": refuse to start otherwise; "warn": log and go on). The
    # embedded server is restarted from its AOF at most redis_max_restarts times per window.
    redis_durability: str = "require"
    redis_max_restarts: int = 5
    redis_restart_window_s: float = 60.0
    redis_restart_backoff_s: float = 0.05  # before the first restart; doubles while it dies
    # Data-dir ownership: how long a starting engine waits for an earlier run's processes to
    # let go of the stores, and (internal, set by the engine for its Ray workers) "pid:start"
    # of the engine process they belong to.
    owner_wait_s: float = 30.0
    engine_owner: str = ""
    # Webchat: how long a session token lives (renewed by the widget on every visit), and the
    # public surface's limits. Sockets are counted per gateway replica (a socket lives in one);
    # frames and new sessions per window in Redis, shared by every replica.
    webchat_session_ttl_s: int = 30 * 24 * 3600
    webchat_sockets_per_ip: int = 20
    webchat_sockets_per_merchant: int = 5000
    # Frames are admitted at a steady rate (limit / window) with a small burst (GCRA): a fixed
    # window let 8 addresses spend 960 frames in one second, about 120 hostile turns a second
    # on one store while this 2-core box answers ~40 (bench/abuse.py). 600 a minute per store
    # is a quarter of that box; a bigger deployment raises it.
    webchat_frames_per_ip: int = 120
    webchat_frames_per_merchant: int = 600
    webchat_frame_burst_per_ip: int = 10  # customers behind one carrier NAT share an address
    webchat_frame_burst_per_merchant: int = 20
    webchat_sessions_per_ip: int = 60
    webchat_window_s: int = 60
    # Store platforms (Salla, Zid, Shopify): how often each integration's catalogue is synced
    # again (webhooks carry the changes in between), how long before expiry a token is
    # refreshed, and the Salla app's OAuth client (its refresh calls name it) and accounts host.
    store_sync_interval_s: float = 900.0
    store_refresh_margin_s: float = 600.0
    salla_client_id: str = ""
    salla_client_secret: str = ""
    salla_accounts_base: str = "https://accounts.salla.sa"
    # Daily settlement (engine/services/settlement.py): how often the scheduled run looks for
    # due dates, how far back it catches up after downtime, how many dates one merchant gets
    # per run, and how long one replica's claim on a date lasts.
    settlement_interval_s: float = 60.0
    payment_sweep_interval_s: float = 60.0
    settlement_lookback_days: int = 62
    settlement_max_dates_per_run: int = 31
    settlement_lease_ms: int = 120_000
    # Query embeddings per host process (L1, LRU; 384 float32 = 1.5 KiB each) and how long the
    # shared Redis copy (L2) lives; 0 entries / 0 seconds turn that tier off.
    query_cache_entries: int = 4096
    query_cache_ttl_s: int = 86_400
    # Retrieval results per host process (LRU keyed by the merchant's catalog revision) and the
    # longest any one is reused; 0 entries or 0 seconds turn the cache off.
    retrieval_cache_entries: int = 2048
    retrieval_cache_ttl_s: float = 300.0

    @property
    def base_url(self) -> str:
        return self.public_base_url or f"http://{self.host}:{self.port}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("KALEEM_DATA_DIR") or ".kaleem").expanduser()
        models_dir = Path(env.get("KALEEM_MODELS_DIR") or data_dir / "models").expanduser()
        return cls(
            host=env.get("KALEEM_HOST") or "127.0.0.1",
            role=_role(env.get("KALEEM_ROLE") or "all"),
            port=_int(env, "KALEEM_PORT", 8080, minimum=0),
            data_dir=data_dir,
            public_base_url=(env.get("KALEEM_PUBLIC_URL") or "").rstrip("/"),
            admin_token=env.get("KALEEM_ADMIN_TOKEN") or "",
            secret_key=env.get("KALEEM_SECRET_KEY") or "",
            mongo_url=env.get("MONGO_URL") or "",
            mongo_db=env.get("MONGO_DB") or "kaleem",
            qdrant_url=env.get("QDRANT_URL") or "",
            redis_url=env.get("REDIS_URL") or "",
            models_dir=models_dir,
            telegram_api_base=(env.get("TELEGRAM_API_BASE") or "https://api.telegram.org").rstrip(
                "/"
            ),
            host_actors=_int(env, "KALEEM_HOST_ACTORS", 2, minimum=1),
            embedder_threads=_int(env, "KALEEM_EMBEDDER_THREADS", 1, minimum=1),
            embedder_passage_threads=_int(env, "KALEEM_EMBEDDER_PASSAGE_THREADS", 2, minimum=1),
            gateway_local_embedder=_bool(env, "KALEEM_GATEWAY_LOCAL_EMBEDDER", True),
            index_reconcile_s=_float(env, "KALEEM_INDEX_RECONCILE_S", 5.0),
            inbox_partitions=_int(env, "KALEEM_INBOX_PARTITIONS", 8, minimum=1),
            max_body_bytes=_int(env, "KALEEM_MAX_BODY_BYTES", 256 * 1024, minimum=1024),
            max_import_bytes=_int(env, "KALEEM_MAX_IMPORT_BYTES", 50 * 1024 * 1024, minimum=1024),
            import_concurrency=_int(env, "KALEEM_IMPORT_CONCURRENCY", 2, minimum=1),
            max_products_per_merchant=_int(
                env, "KALEEM_MAX_PRODUCTS_PER_MERCHANT", 200_000, minimum=1
            ),
            ray_address=env.get("RAY_ADDRESS") or "",
            ray_dashboard=_bool(env, "KALEEM_RAY_DASHBOARD", True),
            ray_dashboard_port=_int(env, "KALEEM_RAY_DASHBOARD_PORT", 8265, minimum=1),
            idle_passivate_s=_float(env, "KALEEM_IDLE_PASSIVATE_S", 300.0),
            playground_timeout_s=_float(env, "KALEEM_PLAYGROUND_TIMEOUT_S", 20.0),
            telegram_per_chat_per_s=_float(env, "KALEEM_TELEGRAM_PER_CHAT_PER_S", 1.0),
            telegram_global_per_s=_float(env, "KALEEM_TELEGRAM_GLOBAL_PER_S", 30.0),
            delivery_max_attempts=_int(env, "KALEEM_DELIVERY_MAX_ATTEMPTS", 8, minimum=1),
            conversation_idle_ttl_s=_int(
                env, "KALEEM_CONVERSATION_IDLE_TTL_SECONDS", 30 * 24 * 3600, minimum=60
            ),
            webchat_dedupe_ttl_s=_int(env, "KALEEM_WEBCHAT_DEDUPE_TTL_S", 15 * 60, minimum=10),
            host_turns_per_merchant=_int(env, "KALEEM_HOST_TURNS_PER_MERCHANT", 8, minimum=1),
            delivery_max_inflight_per_channel=_int(
                env, "KALEEM_DELIVERY_MAX_INFLIGHT_PER_CHANNEL", 4, minimum=1
            ),
            delivery_max_inflight_per_merchant=_int(
                env, "KALEEM_DELIVERY_MAX_INFLIGHT_PER_MERCHANT", 16, minimum=1
            ),
            delivery_max_queued_per_channel=_int(
                env, "KALEEM_DELIVERY_MAX_QUEUED_PER_CHANNEL", 512, minimum=1
            ),
            delivery_send_timeout_s=_float(env, "KALEEM_DELIVERY_SEND_TIMEOUT_S", 10.0),
            graph_api_base=(env.get("GRAPH_API_BASE") or "https://graph.facebook.com").rstrip("/"),
            graph_api_version=env.get("GRAPH_API_VERSION") or "v21.0",
            provider_hosts=tuple(
                h.strip().lower()
                for h in (env.get("KALEEM_PROVIDER_HOSTS") or "").split(",")
                if h.strip()
            ),
            allow_private_api_base=_bool(env, "KALEEM_ALLOW_PRIVATE_API_BASE", False),
            whatsapp_per_number_per_s=_float(env, "KALEEM_WHATSAPP_PER_NUMBER_PER_S", 80.0),
            whatsapp_pair_per_s=_float(env, "KALEEM_WHATSAPP_PAIR_PER_S", 1 / 6),
            whatsapp_pair_burst=_float(env, "KALEEM_WHATSAPP_PAIR_BURST", 10.0),
            meta_per_page_per_s=_float(env, "KALEEM_META_PER_PAGE_PER_S", 300.0),
            circuit_cooldown_s=_float(env, "KALEEM_CIRCUIT_COOLDOWN_S", 1.0),
            llm_base_url=(env.get("LLM_BASE_URL") or "").strip().rstrip("/"),
            llm_api_key=env.get("LLM_API_KEY") or "",
            llm_model=env.get("LLM_MODEL") or "",
            llm_daily_tokens_per_merchant=_int(
                env, "KALEEM_LLM_DAILY_TOKENS_PER_MERCHANT", 200_000, minimum=0
            ),
            llm_timeout_ms=_int(env, "KALEEM_LLM_TIMEOUT_MS", 1500, minimum=50),
            log_level=(env.get("KALEEM_LOG_LEVEL") or "INFO").upper(),
            log_json=_bool(env, "KALEEM_LOG_JSON", True),
            otel_endpoint=(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip(),
            trace_file=env.get("KALEEM_TRACE_FILE") or "",
            trace_sample_ratio=min(1.0, max(0.0, _float(env, "KALEEM_TRACE_SAMPLE_RATIO", 1.0))),
            jwt_secret=env.get("KALEEM_JWT_SECRET") or "",
            cors_origins=tuple(
                o.strip().rstrip("/")
                for o in (env.get("KALEEM_CORS_ORIGINS") or "").split(",")
                if o.strip()
            ),
            api_rate_per_key=_int(env, "KALEEM_API_RATE_PER_KEY", 1200, minimum=1),
            api_rate_per_ip=_int(env, "KALEEM_API_RATE_PER_IP", 3000, minimum=1),
            api_rate_window_s=_int(env, "KALEEM_API_RATE_WINDOW_S", 60, minimum=1),
            webhook_rate_per_address=_int(env, "KALEEM_WEBHOOK_RATE_PER_ADDRESS", 30_000, 1),
            webhook_failures_per_address=_int(
                env, "KALEEM_WEBHOOK_FAILURES_PER_ADDRESS", 600, minimum=1
            ),
            login_max_failures=_int(env, "KALEEM_LOGIN_MAX_FAILURES", 5, minimum=1),
            live_max_per_merchant=_int(env, "KALEEM_LIVE_MAX_PER_MERCHANT", 50, minimum=1),
            live_max_per_address=_int(env, "KALEEM_LIVE_MAX_PER_ADDRESS", 20, minimum=1),
            login_max_per_ip=_int(env, "KALEEM_LOGIN_MAX_PER_IP", 300, minimum=1),
            trusted_proxies=_networks(env, "KALEEM_TRUSTED_PROXIES"),
            redis_durability=_choice(
                env, "KALEEM_REDIS_DURABILITY", "require", REDIS_DURABILITY_POLICIES
            ),
            redis_max_restarts=_int(env, "KALEEM_REDIS_MAX_RESTARTS", 5, minimum=0),
            redis_restart_window_s=_float(env, "KALEEM_REDIS_RESTART_WINDOW_S", 60.0),
            redis_restart_backoff_s=_float(env, "KALEEM_REDIS_RESTART_BACKOFF_S", 0.05),
            owner_wait_s=_float(env, "KALEEM_OWNER_WAIT_S", 30.0),
            engine_owner=env.get("KALEEM_ENGINE_OWNER") or "",
            webchat_session_ttl_s=_int(
                env, "KALEEM_WEBCHAT_SESSION_TTL_S", 30 * 24 * 3600, minimum=60
            ),
            webchat_sockets_per_ip=_int(env, "KALEEM_WEBCHAT_SOCKETS_PER_IP", 20, minimum=1),
            webchat_sockets_per_merchant=_int(
                env, "KALEEM_WEBCHAT_SOCKETS_PER_MERCHANT", 5000, minimum=1
            ),
            webchat_frames_per_ip=_int(env, "KALEEM_WEBCHAT_FRAMES_PER_IP", 120, minimum=1),
            webchat_frames_per_merchant=_int(
                env, "KALEEM_WEBCHAT_FRAMES_PER_MERCHANT", 600, minimum=1
            ),
            webchat_frame_burst_per_ip=_int(
                env, "KALEEM_WEBCHAT_FRAME_BURST_PER_IP", 10, minimum=1
            ),
            webchat_frame_burst_per_merchant=_int(
                env, "KALEEM_WEBCHAT_FRAME_BURST_PER_MERCHANT", 20, minimum=1
            ),
            webchat_sessions_per_ip=_int(env, "KALEEM_WEBCHAT_SESSIONS_PER_IP", 60, minimum=1),
            webchat_window_s=_int(env, "KALEEM_WEBCHAT_WINDOW_S", 60, minimum=1),
            store_sync_interval_s=_float(env, "KALEEM_STORE_SYNC_INTERVAL_S", 900.0),
            store_refresh_margin_s=_float(env, "KALEEM_STORE_REFRESH_MARGIN_S", 600.0),
            salla_client_id=env.get("KALEEM_SALLA_CLIENT_ID") or "",
            salla_client_secret=env.get("KALEEM_SALLA_CLIENT_SECRET") or "",
            salla_accounts_base=(
                env.get("KALEEM_SALLA_ACCOUNTS_BASE") or "https://accounts.salla.sa"
            ).rstrip("/"),
            settlement_interval_s=max(1.0, _float(env, "KALEEM_SETTLEMENT_INTERVAL_S", 60.0)),
            payment_sweep_interval_s=max(1.0, _float(env, "KALEEM_PAYMENT_SWEEP_INTERVAL_S", 60.0)),
            settlement_lookback_days=_int(env, "KALEEM_SETTLEMENT_LOOKBACK_DAYS", 62, minimum=1),
            settlement_max_dates_per_run=_int(
                env, "KALEEM_SETTLEMENT_MAX_DATES_PER_RUN", 31, minimum=1
            ),
            settlement_lease_ms=_int(env, "KALEEM_SETTLEMENT_LEASE_MS", 120_000, minimum=1000),
            query_cache_entries=_int(env, "KALEEM_QUERY_CACHE_ENTRIES", 4096, minimum=0),
            query_cache_ttl_s=_int(env, "KALEEM_QUERY_CACHE_TTL_S", 86_400, minimum=0),
            retrieval_cache_entries=_int(env, "KALEEM_RETRIEVAL_CACHE_ENTRIES", 2048, minimum=0),
            retrieval_cache_ttl_s=max(0.0, _float(env, "KALEEM_RETRIEVAL_CACHE_TTL_S", 300.0)),
        )
