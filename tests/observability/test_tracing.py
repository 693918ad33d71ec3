"""Traces: one trace per customer message, carried in the message envelope across processes.

Unit tests drive the real host core, retriever and delivery worker with in-memory fakes and an
in-memory exporter (each "process" runs in a fresh context, so only the envelope links them);
the integration test follows ONE Telegram update through the real engine (gateway, host and
connector actors in separate Ray processes) via the span file every process appends to.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from connectors.base import Delivered, ProviderCall
from engine.adapters.redis.queues import StreamEntry
from engine.config import Settings
from engine.domain.dialogue.turns import TurnService
from engine.domain.messages import InboundMessage, OutboundReply
from engine.http.problems import ProblemError
from engine.services.delivery import DeliveryWorker
from engine.services.hosting import ConversationHostCore
from engine.services.ports import VectorHit
from engine.services.retrieval import Retriever
from observability import tracing
from observability.logging_setup import JsonFormatter
from tests.conftest import Engine, Store
from tests.engine.test_hosting import FakeCheckpoints, FakeInbox, Merchants, settle
from tests.fakes.fake_telegram import DEFAULT_TOKEN, FakeTelegram, make_update

TEXT = "red running shoes please"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with tracing.installed(provider, "unit"):
        yield memory
    provider.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), names
    return {s.name: s for s in spans}


# -- fakes for the host's retrieval and the delivery worker ------------------------------------
class FakeEmbedder:
    async def embed_queries(self, texts: list[str]) -> Any:
        return np.ones((len(texts), 4), dtype=np.float32)


class FakeVectors:
    async def search(
        self, collection: str, merchant_id: str, vector: list[float], limit: int = 10
    ) -> list[VectorHit]:
        if collection != "products":
            return []
        payload = {"sku": "S-1", "title": "Red running shoes", "price": 100.0, "text": TEXT}
        return [VectorHit("S-1", 0.95, payload)]


class FakeOutbox:
    def __init__(self) -> None:
        self.sent: dict[str, str] = {}

    async def already_sent(self, reply: OutboundReply) -> bool:
        return reply.outbox_id in self.sent

    async def unreachable_since(self, reply: OutboundReply) -> float | None:
        return None

    async def mark_sent(self, reply: OutboundReply, provider_ids: str) -> None:
        self.sent[reply.outbox_id] = provider_ids


class FakeSender:
    async def calls_for(self, reply: OutboundReply) -> list[ProviderCall]:
        return [ProviderCall(method="POST", url="http://x/bot1:secret/sendMessage", json={})]

    async def send(self, call: ProviderCall) -> Delivered:
        return Delivered("42")


def fresh(coro: Any) -> asyncio.Task[Any]:
    """Run in an empty context, as another process would: only the envelope carries the trace."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


def over_the_wire(message: InboundMessage | OutboundReply) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(message.to_dict()))
    return loaded


# -- unit ---------------------------------------------------------------------------------------
def test_tracing_is_off_without_an_endpoint_or_a_trace_file() -> None:
    assert tracing.build_provider(Settings(), "x") is None
    with tracing.installed(None):
        assert not tracing.enabled()
        m = InboundMessage("m1", "ch", "telegram", "c1", "1", "hi", 0.0, trace={"a": "b"})
        with tracing.span("turn", parent=m.trace) as s:
            assert not s.is_recording()
            assert tracing.carry(m) is m  # no copy, no growth of the envelope
            assert tracing.current_ids() is None


async def test_one_message_is_one_trace_across_gateway_host_and_delivery(
    exporter: InMemorySpanExporter,
) -> None:
    # gateway
    inbound = InboundMessage(
        "m1", "ch1", "telegram", "c1", "u1", TEXT, 1000.0, trace={"x-other": "kept"}
    )
    with (
        tracing.span("webhook.telegram", kind=tracing.SERVER),
        tracing.span("inbox.append", merchant_id="m1"),
    ):
        inbound = tracing.carry(inbound)
    assert inbound.trace["x-other"] == "kept"  # other envelope keys survive
    assert inbound.trace["traceparent"].startswith("00-")

    # host (its own process: a fresh context, the message read back from the stream)
    checkpoints = FakeCheckpoints()
    retriever = Retriever(FakeEmbedder(), FakeVectors())  # type: ignore[arg-type]
    core = ConversationHostCore(FakeInbox(), checkpoints, TurnService(retriever), Merchants())
    await fresh(core.dispatch([StreamEntry("inbox", "1-0", over_the_wire(inbound))]))
    await settle(core)
    [reply] = checkpoints.replies

    # connector actor
    worker = DeliveryWorker(
        None,  # type: ignore[arg-type]
        FakeOutbox(),  # type: ignore[arg-type]
        FakeSender(),
        None,
    )
    await fresh(worker._deliver(OutboundReply.from_dict(over_the_wire(reply))))

    spans = by_name(exporter)
    assert set(spans) == {
        "webhook.telegram",
        "inbox.append",
        "turn",
        "embed",
        "vector.search",
        "rank",
        "outbox.write",
        "delivery",
        "provider.call",
    }
    assert len({s.context.trace_id for s in spans.values()}) == 1

    def parent(name: str) -> str | None:
        p = spans[name].parent
        return (
            None
            if p is None
            else next(n for n, s in spans.items() if s.context.span_id == p.span_id)
        )

    assert parent("webhook.telegram") is None
    assert parent("inbox.append") == "webhook.telegram"
    assert parent("turn") == "inbox.append"
    for child in ("embed", "vector.search", "rank", "outbox.write", "delivery"):
        assert parent(child) == "turn", child
    assert parent("provider.call") == "delivery"
    assert spans["turn"].attributes["kaleem.merchant_id"] == "m1"
    assert spans["turn"].attributes["kaleem.intent"] == "product_search"
    assert spans["delivery"].attributes["kaleem.outcome"] == "delivered"
    assert spans["provider.call"].attributes["kaleem.outcome"] == "Delivered"
    for s in spans.values():  # bounded attributes: no message text, no URL (it has the token)
        for value in (s.attributes or {}).values():
            assert TEXT not in str(value) and "secret" not in str(value)


async def test_a_coalesced_turn_links_the_other_messages_traces(
    exporter: InMemorySpanExporter,
) -> None:
    carriers = []
    for n in range(2):
        with tracing.span("inbox.append"):
            m = InboundMessage("m1", "ch", "telegram", "c1", f"u{n}", "x", 0.0)
            carriers.append(tracing.carry(m).trace)
    with tracing.span("turn", parent=carriers[0], links=carriers[1:]):
        pass
    appends = [s for s in exporter.get_finished_spans() if s.name == "inbox.append"]
    [turn] = [s for s in exporter.get_finished_spans() if s.name == "turn"]
    assert turn.parent is not None and turn.parent.span_id == appends[0].context.span_id
    assert [link.context.span_id for link in turn.links] == [appends[1].context.span_id]


def test_errors_mark_the_span_without_recording_the_message(
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(ValueError), tracing.span("turn"):
        raise ValueError(f"cannot parse {TEXT}")
    with pytest.raises(ProblemError), tracing.span("webhook.telegram"):
        raise ProblemError(401, "Unauthorized", "secret token missing or wrong")
    failed, rejected = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ValueError"
    assert not failed.events  # the exception text (customer input) is not recorded
    assert rejected.status.status_code is StatusCode.UNSET  # a client error is not our error
    assert rejected.attributes["http.response.status_code"] == 401


def test_unsampled_traces_stay_unsampled_downstream(tmp_path: Path) -> None:
    provider = tracing.build_provider(
        Settings(trace_file=str(tmp_path / "s.jsonl"), trace_sample_ratio=0.0), "x"
    )
    assert provider is not None
    with tracing.installed(provider):
        with tracing.span("inbox.append"):
            m = tracing.carry(InboundMessage("m1", "ch", "telegram", "c1", "1", "x", 0.0))
        flags = int(m.trace["traceparent"].rsplit("-", 1)[1], 16)
        assert not flags & 1  # "not sampled" travels with the message
        with tracing.span("turn", parent=m.trace) as s:
            assert not s.is_recording()
    provider.shutdown()
    assert not (tmp_path / "s.jsonl").exists()


def test_merchant_context_for_logs_is_scoped_even_when_tracing_is_off() -> None:
    with tracing.installed(None):
        assert tracing.MERCHANT_ID.get() is None
        with tracing.span("turn", merchant_id="m7"):
            assert tracing.MERCHANT_ID.get() == "m7"
        assert tracing.MERCHANT_ID.get() is None


def test_log_lines_carry_trace_span_and_merchant_ids(exporter: InMemorySpanExporter) -> None:
    record = logging.LogRecord("kaleem", logging.WARNING, __file__, 1, "delivery retry", (), None)
    with tracing.span("delivery", merchant_id="m9") as s:
        line = orjson.loads(JsonFormatter("kaleem-delivery").format(record))
        ctx = s.get_span_context()
    assert line["trace_id"] == f"{ctx.trace_id:032x}"
    assert line["span_id"] == f"{ctx.span_id:016x}"
    assert line["merchant_id"] == "m9"
    assert line["service"] == "kaleem-delivery"
    outside = orjson.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside and "merchant_id" not in outside


def test_span_file_exporter_writes_one_json_line_per_span(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    provider = tracing.build_provider(Settings(trace_file=str(path)), "kaleem-test")
    assert provider is not None
    with (
        tracing.installed(provider),
        tracing.span("webhook.telegram"),
        tracing.span("inbox.append"),
    ):
        pass
    provider.shutdown()  # flushes the batch
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert [x["name"] for x in lines] == ["inbox.append", "webhook.telegram"]
    assert lines[0]["parent_id"] == lines[1]["span_id"] and lines[1]["parent_id"] is None
    assert {x["service"] for x in lines} == {"kaleem-test"}


def test_settings_read_the_otel_variables() -> None:
    s = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "KALEEM_TRACE_FILE": "/tmp/x.jsonl",
            "KALEEM_TRACE_SAMPLE_RATIO": "7",
        }
    )
    assert s.otel_endpoint == "http://collector:4318/"
    assert tracing.otlp_traces_url(s) == "http://collector:4318/v1/traces"
    assert s.trace_file == "/tmp/x.jsonl" and s.trace_sample_ratio == 1.0
    assert Settings.from_env({}).otel_endpoint == ""


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []  # noqa: RUF012 - one test's fake, reset by it

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_otlp_http_export_reaches_a_collector_on_loopback() -> None:
    """The real OTLP/HTTP exporter, protobuf on the wire, to a fake collector."""
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        provider = tracing.build_provider(Settings(otel_endpoint=endpoint), "kaleem-gateway")
        assert provider is not None
        with tracing.installed(provider), tracing.span("webhook.telegram", merchant_id="m1"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    [(path, body)] = _Collector.received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "kaleem-gateway"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "webhook.telegram"


# -- integration: the real engine ---------------------------------------------------------------
_ids = itertools.count(int(time.time()) % 1_000_000 * 10 + 7_000_000)


def load_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def read_trace(path: Path, message_id: str, want: set[str]) -> list[dict[str, Any]]:
    """The spans of the trace whose ``inbox.append`` carries ``message_id``, once ``want`` are
    all exported (each process flushes its batch every 100 ms)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        tracing.force_flush()  # this process is the gateway
        lines = await asyncio.to_thread(load_lines, path)
        roots = [
            x
            for x in lines
            if x["name"] == "inbox.append"
            and x["attributes"].get("kaleem.message_id") == message_id
        ]
        if roots:
            spans = [x for x in lines if x["trace_id"] == roots[0]["trace_id"]]
            if want <= {x["name"] for x in spans}:
                return spans
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"trace of {message_id} incomplete: {[x['name'] for x in lines]}")
        await asyncio.sleep(0.1)


async def connect_telegram(
    engine: Engine, api_key: str, fake: FakeTelegram, token: str = DEFAULT_TOKEN
) -> tuple[str, str]:
    return await engine.connect_telegram(api_key, fake.base_url, token)


TREE = {
    "webhook.telegram": None,
    "inbox.append": "webhook.telegram",
    "turn": "inbox.append",
    "embed": "turn",
    "vector.search": "turn",
    "rank": "turn",
    "outbox.write": "turn",
    "delivery": "turn",
    "provider.call": "delivery",
}


@pytest.mark.integration
async def test_span_tree_of_one_telegram_message_through_the_real_engine(
    engine: Engine, demo_store: Store, fake_telegram: FakeTelegram
) -> None:
    channel_id, secret = await connect_telegram(engine, demo_store.api_key, fake_telegram)
    update_id, chat = next(_ids), next(_ids)
    # A question no other test asks: a repeat on the same host is answered from the results
    # cache, with no embed, vector.search or rank span.
    text = "أبحث عن جزمة رياضية للجري"
    assert (
        await engine.post_telegram_update(channel_id, secret, make_update(update_id, chat, text))
        == 200
    )
    [sent] = await fake_telegram.wait_for_messages(chat, 1, timeout=60)
    assert "AirFlow Running Shoes" in sent["text"]  # the user-visible outcome first

    path = Path(engine.runtime.settings.trace_file)
    spans = await read_trace(path, str(update_id), set(TREE))
    names = {x["span_id"]: x["name"] for x in spans}
    by = {x["name"]: x for x in spans}
    for name, parent in TREE.items():
        got = names.get(by[name]["parent_id"]) if by[name]["parent_id"] else None
        assert got == parent, (name, got, parent)
    assert len({x["trace_id"] for x in spans}) == 1
    # every span of the message is in the tree: one turn, one delivery, no strays. The engine
    # ranks in-process (one Serve call per question).
    optional = {"provider.call"}
    assert sorted(x["name"] for x in spans if x["name"] not in optional) == sorted(
        n for n in TREE if n not in optional
    )
    assert all(
        names.get(x["parent_id"]) == "delivery" for x in spans if x["name"] == "provider.call"
    )
    # three kinds of process, joined only by the envelope
    assert by["webhook.telegram"]["service"] == by["inbox.append"]["service"] == "kaleem-gateway"
    assert by["turn"]["service"] == by["embed"]["service"] == "kaleem-host"
    assert by["delivery"]["service"] == "kaleem-delivery-telegram"
    for name in ("inbox.append", "turn", "delivery"):
        assert by[name]["attributes"]["kaleem.merchant_id"] == demo_store.merchant_id
    assert by["delivery"]["attributes"]["kaleem.outcome"] == "delivered"
    blob = orjson.dumps(spans).decode()
    assert text not in blob and DEFAULT_TOKEN not in blob and secret not in blob
