"""Hot-path cost of tracing: ns per span and per envelope injection, off and on. Prints JSON.

"off" is production without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the default); "on" uses a real
SDK provider with a batch processor whose exporter drops spans, so it measures span creation,
context attach/detach and the processor hand-off, not the network.

    .venv/bin/python bench/tracing_overhead.py [--n 200000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from engine.domain.messages import InboundMessage
from observability import tracing


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def ns_per_call(fn: Callable[[], object], n: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return round(best, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    msg = InboundMessage("m1", "ch1", "telegram", "c1", "u1", "hi", 0.0)
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    def bare() -> None:
        pass

    def plain_span() -> None:
        with tracing.span("embed", kind=tracing.CLIENT, attributes={"kaleem.batch": 1}):
            pass

    def turn_span() -> None:
        with tracing.span("turn", parent=carrier, merchant_id="m1"):
            pass

    def carry() -> None:
        tracing.carry(msg)

    def annotate() -> None:
        tracing.annotate(outcome="delivered")

    proxy = trace.get_tracer("bench")  # plain OTel API with no provider set, for reference

    def otel_api_noop() -> None:
        with proxy.start_as_current_span("embed"):
            pass

    out: dict[str, object] = {"n": n, "python": sys.version.split()[0]}
    with tracing.installed(None):
        out["off_ns"] = {
            "empty_loop": ns_per_call(bare, n),
            "span": ns_per_call(plain_span, n),
            "span_with_parent_and_merchant": ns_per_call(turn_span, n),
            "carry": ns_per_call(carry, n),
            "annotate": ns_per_call(annotate, n),
            "otel_api_proxy_tracer_span": ns_per_call(otel_api_noop, n),
        }
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=1 << 16))
    with tracing.installed(provider, "bench"):
        m = max(n // 10, 1000)
        out["on_ns"] = {
            "span": ns_per_call(plain_span, m),
            "span_with_parent_and_merchant": ns_per_call(turn_span, m),
            "annotate_outside_span": ns_per_call(annotate, m),
        }

        def carry_in_span() -> None:
            with tracing.span("inbox.append"):
                tracing.carry(msg)

        out["on_ns"]["span_plus_carry"] = ns_per_call(carry_in_span, m)  # type: ignore[index]
    provider.shutdown()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
