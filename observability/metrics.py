"""Every metric the engine exports, declared once, usable from any process.

The gateway serves these from ``REGISTRY`` on ``/metrics`` (prometheus-client). Ray actor
processes have no HTTP server of their own, so ``actors.metrics_backend.bind()`` re-points
the same families at ``ray.util.metrics``; Ray's metrics agent exports them prefixed ``ray_``
and the Prometheus scrape config strips that prefix again (see
``observability/prometheus/prometheus.yml``), so rules and dashboards see one name per signal
whichever process emitted it.

Label sets are bounded: route templates, channel kinds, fixed outcome / result / model / cache
names only — never a customer, message or merchant id.
"""

from __future__ import annotations

import builtins
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.domain.dialogue.intents import INTENTS

Kind = Literal["counter", "gauge", "histogram"]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
TTFR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Child:
    """One labelled series; forwards to whichever backend the family is bound to."""

    __slots__ = ("_family", "_prom", "_tags")

    def __init__(self, family: Family, values: Sequence[str]) -> None:
        self._family = family
        self._tags = dict(zip(family.labelnames, values, strict=True))
        self._prom: Any = family.prom.labels(*values) if values else family.prom

    def inc(self, amount: float = 1.0) -> None:
        if amount == 0:  # Ray's Counter rejects 0; a no-op either way
            return
        ray_metric = self._family.ray_metric
        if ray_metric is not None:
            ray_metric.inc(amount, tags=self._tags)
        else:
            self._prom.inc(amount)

    def set(self, value: float) -> None:
        ray_metric = self._family.ray_metric
        if ray_metric is not None:
            ray_metric.set(value, tags=self._tags)
        else:
            self._prom.set(value)

    def observe(self, value: float) -> None:
        ray_metric = self._family.ray_metric
        if ray_metric is not None:
            ray_metric.observe(value, tags=self._tags)
        else:
            self._prom.observe(value)


class Family:
    """A metric family with prometheus-client's ``labels(...).inc()`` call shape."""

    def __init__(
        self,
        kind: Kind,
        name: str,
        doc: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.kind: Kind = kind
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        self.ray_metric: Any = None
        self.prom: Any
        if kind == "counter":
            self.prom = Counter(name, doc, self.labelnames, registry=REGISTRY)
        elif kind == "gauge":
            self.prom = Gauge(name, doc, self.labelnames, registry=REGISTRY)
        else:
            self.prom = Histogram(name, doc, self.labelnames, buckets=buckets, registry=REGISTRY)
        self._children: dict[tuple[str, ...], _Child] = {}
        _FAMILIES.append(self)

    def labels(self, *values: str) -> _Child:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Child(self, values)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def exported_names(self) -> builtins.set[str]:
        """The sample names Prometheus stores for this family (after the ``ray_`` strip)."""
        if self.kind == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


_FAMILIES: list[Family] = []


def families() -> list[Family]:
    return list(_FAMILIES)


def exported_names() -> set[str]:
    """Every sample name the code can export, for the rules/dashboards consistency test."""
    names: set[str] = set()
    for f in _FAMILIES:
        names |= f.exported_names()
    names |= {"process_cpu_seconds_total", "process_resident_memory_bytes"}
    names |= {c for c in _HostCollector.NAMES}
    return names


# -- HTTP (gateway) ---------------------------------------------------------------------------
HTTP_REQUESTS = Family(
    "counter",
    "kaleem_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Family(
    "histogram",
    "kaleem_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
)
WEBHOOKS = Family(
    "counter",
    "kaleem_webhooks_total",
    "Webhooks by channel kind and outcome "
    "(accepted, duplicate, ignored, bad_signature, malformed, unknown_channel)",
    ["channel", "outcome"],
)
PLAYGROUND_REPLY = Family(
    "histogram",
    "kaleem_playground_reply_seconds",
    "Playground request to reply",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
)

# -- queues (measured by the gateway at scrape time, from Redis) ------------------------------
INBOX_BACKLOG = Family("gauge", "kaleem_inbox_backlog", "Inbox entries not yet acknowledged")
INBOX_OLDEST_AGE = Family(
    "gauge",
    "kaleem_inbox_oldest_age_seconds",
    "Age of the oldest unacknowledged inbox entry (0 when empty)",
)
OUTBOX_BACKLOG = Family(
    "gauge",
    "kaleem_outbox_backlog",
    "Outbox entries not yet delivered or dead-lettered, by outbox stream",
    ["channel"],
)
OUTBOX_OLDEST_AGE = Family(
    "gauge",
    "kaleem_outbox_oldest_age_seconds",
    "Age of the oldest undelivered outbox entry (0 when empty), by outbox stream",
    ["channel"],
)
DEAD_LETTER_BACKLOG = Family(
    "gauge", "kaleem_dead_letter_backlog", "Entries in the dead-letter stream"
)

# -- delivery (gateway for webchat/playground, connector actors for providers) ---------------
TTFR = Family(
    "histogram",
    "kaleem_ttfr_seconds",
    "Time to first reply: webhook received to provider send call completed, by channel kind",
    ["channel"],
    buckets=TTFR_BUCKETS,
)
DELIVERIES = Family(
    "counter",
    "kaleem_deliveries_total",
    "Replies leaving the outbox by channel kind and outcome (delivered, dead_letter)",
    ["channel", "outcome"],
)
DELIVERY_RETRIES = Family(
    "counter",
    "kaleem_delivery_retries_total",
    "Provider calls retried (429, 5xx, timeouts) by channel kind",
    ["channel"],
)
DEAD_LETTERS = Family(
    "counter",
    "kaleem_dead_letters_total",
    "Replies given up on and moved to the dead-letter stream, by channel kind",
    ["channel"],
)
PROVIDER_CIRCUIT_OPEN = Family(
    "gauge",
    "kaleem_provider_circuit_open",
    "1 while the circuit breaker in front of a provider is open, by channel kind",
    ["channel"],
)

# -- conversation hosts (actors) ---------------------------------------------------------------
TURN_LATENCY = Family(
    "histogram", "kaleem_turn_seconds", "One conversation turn, load to commit", ["channel"]
)
CONVERSATIONS_ACTIVE = Family(
    "gauge",
    "kaleem_conversations_active",
    "Virtual conversation actors held in memory, by host actor index",
    ["host"],
)
CONVERSATIONS_PASSIVATED = Family(
    "counter",
    "kaleem_conversations_passivated_total",
    "Idle conversation actors dropped from memory (state stays checkpointed)",
    ["host"],
)
CACHE = Family(
    "counter",
    "kaleem_cache_requests_total",
    "Cache lookups by cache name, level (l1, l2) and result (hit, miss)",
    ["cache", "level", "result"],
)
ACTOR_START_TIME = Family(
    "gauge",
    "kaleem_actor_start_time_seconds",
    "Unix time an actor incarnation started; a change means Ray restarted it",
    ["actor"],
)

# -- models and retrieval ---------------------------------------------------------------------
INFERENCE_LATENCY = Family(
    "histogram",
    "kaleem_model_inference_seconds",
    "Model call latency as seen by the caller, by model",
    ["model"],
)
INFERENCE_BATCH = Family(
    "histogram",
    "kaleem_model_batch_size",
    "Inputs per model call, by model",
    ["model"],
    buckets=BATCH_BUCKETS,
)
VECTOR_SEARCH_LATENCY = Family(
    "histogram",
    "kaleem_vector_search_seconds",
    "Vector search latency by collection",
    ["collection"],
)

# -- business ---------------------------------------------------------------------------------
REPLIES = Family(
    "counter",
    "kaleem_replies_total",
    "Replies produced by channel kind and intent (bounded set of intents)",
    ["channel", "intent"],
)
HANDOFFS = Family(
    "counter", "kaleem_handoffs_total", "Conversations handed to a human", ["channel"]
)
UNANSWERED = Family(
    "counter",
    "kaleem_unanswered_total",
    "Customer questions the bot could not ground in the catalog or knowledge",
    ["channel"],
)


# -- store platforms (Salla, Zid, Shopify) ------------------------------------------------------
STORE_SYNC = Family(
    "counter",
    "kaleem_store_sync_total",
    "Catalogue sync passes by store kind and outcome (ok, failed)",
    ["kind", "outcome"],
)
STORE_PRODUCTS_SYNCED = Family(
    "counter",
    "kaleem_store_products_synced_total",
    "Products seen by complete catalogue sync passes, by store kind",
    ["kind"],
)
STORE_SYNC_LAG = Family(
    "gauge",
    "kaleem_store_sync_lag_seconds",
    "Seconds since the stalest connected integration of a kind last completed a sync pass",
    ["kind"],
)
STORE_WEBHOOKS = Family(
    "counter",
    "kaleem_store_webhooks_total",
    "Store webhooks by kind and outcome "
    "(accepted, duplicate, ignored, bad_signature, malformed, unknown_integration)",
    ["kind", "outcome"],
)
STORE_WEBHOOK_SUBSCRIPTIONS = Family(
    "counter",
    "kaleem_store_webhook_subscriptions_total",
    "Webhook subscription attempts at store platforms by kind and outcome "
    "(subscribed, failed, unsubscribed, unsubscribe_failed)",
    ["kind", "outcome"],
)
# -- finance: daily settlement, orders ------------------------------------------------------------
SETTLEMENTS = Family(
    "counter",
    "kaleem_settlements_total",
    "Daily settlements written, by outcome (completed, failed)",
    ["outcome"],
)
SETTLEMENT_LAST_SUCCESS = Family(
    "gauge",
    "kaleem_settlement_last_success_timestamp_seconds",
    "When the latest completed settlement was written (unix seconds)",
)
ORDERS = Family(
    "counter",
    "kaleem_orders_total",
    "Orders created (status new) and moved to a status, by that status",
    ["status"],
)
# -- payments ---------------------------------------------------------------------------------
PAYMENTS = Family(
    "counter",
    "kaleem_payments_total",
    "Payment operations by provider and outcome "
    "(created, create_failed, paid, refunded, refund_failed)",
    ["provider", "outcome"],
)
REVENUE_MINOR = Family(
    "counter",
    "kaleem_revenue_minor_total",
    "Money captured, in the currency's minor unit (halalas for SAR), by provider and currency",
    ["provider", "currency"],
)
PAYMENT_WEBHOOKS = Family(
    "counter",
    "kaleem_payment_webhooks_total",
    "Payment webhooks by provider and outcome "
    "(recorded, duplicate, ignored, bad_signature, unknown, unmatched, amount_mismatch, "
    "order_closed)",
    ["provider", "outcome"],
)


def bounded(value: str, allowed: Iterable[str], other: str = "other") -> str:
    """Clamp a label value to a fixed set so a new intent or kind never explodes cardinality."""
    return value if value in allowed else other


def bounded_intent(intent: str) -> str:
    """The domain's intent list is the label set (a new intent is labelled the day it exists)."""
    return bounded(intent, INTENTS)


# -- host saturation (custom collector on the gateway registry) -------------------------------
class _HostCollector(Collector):
    """Memory limit and data-disk usage, read at scrape time (local statvfs / cgroup files).

    CPU and RSS come from ``ProcessCollector``; these give the denominators the saturation
    alerts need without a node exporter.
    """

    NAMES = ("kaleem_memory_limit_bytes", "kaleem_disk_free_bytes", "kaleem_disk_size_bytes")

    def __init__(self) -> None:
        self.data_dir: Path | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        limit = _memory_limit()
        if limit:
            yield GaugeMetricFamily(
                "kaleem_memory_limit_bytes", "cgroup memory limit, else host RAM", value=limit
            )
        if self.data_dir is not None and self.data_dir.exists():
            usage = shutil.disk_usage(self.data_dir)
            yield GaugeMetricFamily(
                "kaleem_disk_free_bytes", "Free bytes on the data volume", value=usage.free
            )
            yield GaugeMetricFamily(
                "kaleem_disk_size_bytes", "Size of the data volume", value=usage.total
            )


def _memory_limit() -> float:
    cgroup = Path("/sys/fs/cgroup/memory.max")
    try:
        raw = cgroup.read_text().strip()
        if raw and raw != "max":
            return float(raw)
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 0.0


HOST = _HostCollector()
REGISTRY.register(HOST)


def watch_data_dir(path: Path) -> None:
    """Called by the gateway's composition root so disk saturation covers the data volume."""
    HOST.data_dir = path
