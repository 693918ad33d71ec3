"""Gateway-process metrics (prometheus-client). Label sets are bounded: route templates,
channel kinds and fixed outcome names only — never a customer, message or merchant id."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "kaleem_http_requests_total",
    "HTTP requests by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "kaleem_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
WEBHOOKS = Counter(
    "kaleem_webhooks_total",
    "Webhooks by channel kind and outcome "
    "(accepted, duplicate, ignored, bad_signature, malformed, unknown_channel)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
PLAYGROUND_REPLY = Histogram(
    "kaleem_playground_reply_seconds",
    "Playground request to reply",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
    registry=REGISTRY,
)
INBOX_BACKLOG = Gauge(
    "kaleem_inbox_backlog", "Inbox entries not yet acknowledged", registry=REGISTRY
)
