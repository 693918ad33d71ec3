"""OpenTelemetry tracing: one trace per customer message, across the gateway and Ray actors.

The trace context crosses process boundaries inside the message envelope, not in Ray's call
metadata: the gateway writes a W3C ``traceparent`` into ``InboundMessage.trace`` before the
inbox append, the host actor continues that trace for the turn and writes the turn's context
into ``OutboundReply.trace`` before the outbox write, and the delivery worker continues it for
the provider call. Durable queues (Redis streams) sit between the hops, so the context survives
restarts and redeliveries exactly as the message does.

Span tree of one Telegram message (names are the contract the tests assert)::

    webhook.telegram                      gateway
    └── inbox.append                      gateway   (traceparent injected here)
        └── turn                          host actor   (links to coalesced messages)
            ├── embed                     (Serve call)
            ├── vector.search
            ├── rank                      (BM25 + fusion, in-process)
            ├── outbox.write              (checkpoint + reply, one MULTI)
            └── delivery                  connector actor (traceparent of the turn)
                └── provider.call         one per HTTP call (retries are siblings)

Cost when off (no ``OTEL_EXPORTER_OTLP_ENDPOINT`` and no ``KALEEM_TRACE_FILE``): ``span()``
returns a shared no-op scope after one flag check and ``carry()`` returns its argument, so the
hot path pays well under a microsecond per span (``bench/tracing_overhead.py``). The OTLP
exporter is imported only when an endpoint is configured.

Attributes are bounded and never carry message text, tokens or URLs (a Telegram URL contains
the bot token): channel kind, merchant id, provider message / outbox ids, counts, outcomes.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from engine.domain.messages import InboundMessage, OutboundReply

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

    from engine.config import Settings

log = logging.getLogger(__name__)

AttrValue = str | bool | int | float
Message = TypeVar("Message", InboundMessage, OutboundReply)

SERVER = SpanKind.SERVER
CLIENT = SpanKind.CLIENT
CONSUMER = SpanKind.CONSUMER
INTERNAL = SpanKind.INTERNAL

# Set while a message's work runs (webhook, turn, delivery) so every log line written in that
# context carries the merchant id, traced or not; read by observability.logging_setup.
MERCHANT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kaleem_merchant_id", default=None
)

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_KEYS = ("traceparent", "tracestate")


class _State:
    __slots__ = ("enabled", "provider", "service", "tracer")

    def __init__(self) -> None:
        self.enabled = False
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.provider: TracerProvider | None = None
        self.service = ""


_state = _State()
_lock = threading.Lock()


# -- set-up (once per process, from its composition point) ----------------------------------
def configure_tracing(settings: Settings, service_name: str) -> bool:
    """Install this process's tracer; True when spans will be exported.

    Idempotent: the first call in a process that configures an exporter wins, later calls are
    no-ops (each Ray actor process and the gateway call it from their composition point).
    """
    with _lock:
        if _state.provider is None:
            provider = build_provider(settings, service_name)
            if provider is not None:
                _install(provider, service_name)
        return _state.enabled


def build_provider(settings: Settings, service_name: str) -> TracerProvider | None:
    """OTLP/HTTP (batched, on a background thread) when ``settings.otel_endpoint`` is set;
    JSON lines appended to ``settings.trace_file`` when that is set (the test and debugging
    hook); None (tracing off) otherwise. Head sampling by trace id, parent-based, so a trace
    is kept or dropped as a whole across processes."""
    if not (settings.otel_endpoint or settings.trace_file):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service_name, "service.instance.id": str(os.getpid())}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    if settings.otel_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(settings)))
        )
    if settings.trace_file:
        provider.add_span_processor(
            BatchSpanProcessor(
                JsonLinesSpanExporter(settings.trace_file), schedule_delay_millis=100
            )
        )
    return provider


def otlp_traces_url(settings: Settings) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL; the HTTP exporter wants the signal path."""
    base = settings.otel_endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def _install(provider: TracerProvider | None, service: str) -> None:
    _state.provider = provider
    _state.service = service
    _state.enabled = provider is not None
    _state.tracer = provider.get_tracer("kaleem") if provider is not None else trace.NoOpTracer()


@contextmanager
def installed(provider: TracerProvider | None, service: str = "test") -> Iterator[None]:
    """Swap the process's provider for a block and restore it (unit tests, benchmarks)."""
    with _lock:
        saved = (_state.provider, _state.service)
        _install(provider, service)
    try:
        yield
    finally:
        with _lock:
            _install(*saved)


def enabled() -> bool:
    return _state.enabled


def force_flush(timeout_ms: int = 5000) -> bool:
    provider = _state.provider
    return provider.force_flush(timeout_ms) if provider is not None else True


# -- spans -----------------------------------------------------------------------------------
class _Scope:
    """``with span(...) as s:`` — a current span (and merchant log context) for a block.

    Exceptions end the span with status ERROR and ``error.type`` only: the exception's message
    may quote customer input, so it is not recorded.
    """

    __slots__ = ("_attrs", "_kind", "_links", "_merchant", "_name", "_parent", "_span", "_tokens")

    def __init__(
        self,
        name: str,
        parent: Mapping[str, str] | None,
        kind: SpanKind,
        merchant_id: str | None,
        attributes: Mapping[str, AttrValue] | None,
        links: Sequence[Mapping[str, str]],
    ) -> None:
        self._name = name
        self._parent = parent
        self._kind = kind
        self._merchant = merchant_id
        self._attrs = attributes
        self._links = links
        self._span: Span = INVALID_SPAN
        self._tokens: tuple[Any, Any] | None = None

    def __enter__(self) -> Span:
        merchant_token = MERCHANT_ID.set(self._merchant) if self._merchant else None
        if not _state.enabled:
            self._tokens = (merchant_token, None)
            return INVALID_SPAN
        ctx = _PROPAGATOR.extract(self._parent) if self._parent is not None else None
        attrs: dict[str, AttrValue] = dict(self._attrs) if self._attrs else {}
        if self._merchant:
            attrs["kaleem.merchant_id"] = self._merchant
        links = [trace.Link(sc) for sc in map(_span_context, self._links) if sc is not None]
        span = _state.tracer.start_span(
            self._name, context=ctx, kind=self._kind, attributes=attrs, links=links
        )
        self._span = span
        self._tokens = (merchant_token, otel_context.attach(trace.set_span_in_context(span)))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        merchant_token, otel_token = self._tokens or (None, None)
        if otel_token is not None:
            span = self._span
            if exc is not None:
                status = getattr(exc, "status", None)
                if isinstance(status, int):
                    span.set_attribute("http.response.status_code", status)
                span.set_attribute("error.type", type(exc).__name__)
                if not (isinstance(status, int) and status < 500):
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()
            otel_context.detach(otel_token)
        if merchant_token is not None:
            MERCHANT_ID.reset(merchant_token)


class _NoopScope:
    __slots__ = ()

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP = _NoopScope()


def span(
    name: str,
    *,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = INTERNAL,
    merchant_id: str | None = None,
    attributes: Mapping[str, AttrValue] | None = None,
    links: Sequence[Mapping[str, str]] = (),
) -> _Scope | _NoopScope:
    """A span around a block, child of the current span, or of ``parent`` (a carrier dict
    such as ``message.trace``) when given: that is how a trace continues in another process.

    ``links`` are further carriers (the other messages of a coalesced turn).
    """
    if not _state.enabled and merchant_id is None:
        return _NOOP
    return _Scope(name, parent, kind, merchant_id, attributes, links)


def annotate(**attributes: AttrValue) -> None:
    """Add attributes to the current span (known only part-way through, like the merchant)."""
    if not _state.enabled:
        return
    current = trace.get_current_span()
    if current.is_recording():
        for key, value in attributes.items():
            current.set_attribute(f"kaleem.{key}", value)


def _span_context(carrier: Mapping[str, str]) -> trace.SpanContext | None:
    sc = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return sc if sc.is_valid else None


# -- propagation -----------------------------------------------------------------------------
def carry(message: Message) -> Message:
    """The message with the current span's W3C context in its ``trace`` envelope.

    Returns the message itself when tracing is off or no span is recording, so the hot path
    neither copies nor grows the envelope. Other keys of ``trace`` are kept.
    """
    if not _state.enabled:
        return message
    current = trace.get_current_span()
    if not current.get_span_context().is_valid:
        return message
    carrier = {k: v for k, v in message.trace.items() if k not in _TRACE_KEYS}
    _PROPAGATOR.inject(carrier)
    return dataclasses.replace(message, trace=carrier)


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span as hex, for log lines; None outside a span."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return None
    return f"{sc.trace_id:032x}", f"{sc.span_id:016x}"


# -- the JSON-lines exporter (test and debugging hook) -----------------------------------------
def span_record(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.context
    parent = s.parent
    return {
        "name": s.name,
        "service": str(s.resource.attributes.get("service.name", "")),
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": s.kind.name if s.kind is not None else "INTERNAL",
        "start_ns": s.start_time,
        "end_ns": s.end_time,
        "status": s.status.status_code.name,
        "attributes": dict(s.attributes or {}),
        "links": [f"{link.context.span_id:016x}" for link in s.links],
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends finished spans as JSON lines to one file shared by every process.

    Each batch is one ``write`` on an ``O_APPEND`` descriptor, so lines from concurrent
    processes never interleave. Runs on the batch processor's thread, never on an event loop.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(orjson.dumps(span_record(s)) + b"\n" for s in spans)
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            log.warning("trace file write failed", extra={"spans": len(spans)})
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


__all__ = [
    "CLIENT",
    "CONSUMER",
    "INTERNAL",
    "MERCHANT_ID",
    "SERVER",
    "JsonLinesSpanExporter",
    "annotate",
    "build_provider",
    "carry",
    "configure_tracing",
    "current_ids",
    "enabled",
    "force_flush",
    "installed",
    "otlp_traces_url",
    "span",
]
