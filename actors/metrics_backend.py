"""Point the metric families at ``ray.util.metrics`` inside a Ray worker process.

Actor processes serve no HTTP, so their metrics travel through Ray's per-node metrics agent,
which exports them as ``ray_<name>`` (counters get ``_total`` appended by Ray, so the Ray
counter is registered without it). Prometheus strips the ``ray_`` prefix on scrape; the result
is the same sample names the gateway exports.
"""

from __future__ import annotations

import time

from observability import metrics

_bound = False


def bind(actor: str | None = None) -> None:
    """Idempotent per process; ``actor`` records this incarnation's start time."""
    global _bound
    if not _bound:
        from ray.util import metrics as ray_metrics

        for family in metrics.families():
            tags = family.labelnames
            if family.kind == "counter":
                name = family.name.removesuffix("_total")
                family.ray_metric = ray_metrics.Counter(name, description=family.doc, tag_keys=tags)
            elif family.kind == "gauge":
                family.ray_metric = ray_metrics.Gauge(
                    family.name, description=family.doc, tag_keys=tags
                )
            else:
                family.ray_metric = ray_metrics.Histogram(
                    family.name,
                    description=family.doc,
                    boundaries=list(family.buckets),
                    tag_keys=tags,
                )
        _bound = True
    if actor is not None:
        metrics.ACTOR_START_TIME.labels(actor).set(time.time())
