"""OTLP export for real: a gateway configured with an OTLP endpoint sends its spans and metrics
over HTTP (protobuf) and over gRPC to a collector stand-in on loopback; and a collector that is
down, or an exporter that raises, changes nothing for the requests."""

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mpb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

from gateway.config import Settings
from gateway.telemetry import instruments
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, free_port
from tests.telemetry.support import UPSTREAM_KEY_ENV, chat, config, write_policies

TRACE_ID, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


class Received:
    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any]]] = []
        self.metrics: set[str] = set()
        self.lock = threading.Lock()

    def traces(self, req: tpb.ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        attrs = {kv.key: _value(kv.value) for kv in s.attributes}
                        attrs |= {"_trace_id": s.trace_id.hex(), "_span_id": s.span_id.hex(),
                                  "_parent_id": s.parent_span_id.hex()}  # fmt: skip
                        self.spans.append((s.name, attrs))

    def metric_names(self, req: mpb.ExportMetricsServiceRequest) -> None:
        with self.lock:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    self.metrics.update(m.name for m in sm.metrics)

    def wait(self, span: str, metric: str, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = [a for n, a in self.spans if n == span]
                if found and metric in self.metrics:
                    return found[0]
            time.sleep(0.1)
        raise AssertionError(f"not received: span {span!r} / metric {metric!r}: "
                             f"{[n for n, _ in self.spans]} {sorted(self.metrics)}")  # fmt: skip

    def wait_trace(self, trace_id: str, n: int, timeout_s: float = 20) -> dict[str, Any]:
        """{span name: attributes} of the `n` spans of one trace."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = {name: a for name, a in self.spans if a["_trace_id"] == trace_id}
            if len(found) >= n:
                return found
            time.sleep(0.1)
        raise AssertionError(f"not received: {n} spans of trace {trace_id}")


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind)


@pytest.fixture
def http_collector() -> Iterator[tuple[str, Received]]:
    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.path == "/v1/traces":
                got.traces(tpb.ExportTraceServiceRequest.FromString(body))
                reply = tpb.ExportTraceServiceResponse().SerializeToString()
            else:
                got.metric_names(mpb.ExportMetricsServiceRequest.FromString(body))
                reply = mpb.ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def grpc_collector() -> Iterator[tuple[str, Received]]:
    got = Received()

    class Traces(tgrpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            got.traces(request)
            return tpb.ExportTraceServiceResponse()

    class Metrics(mgrpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            got.metric_names(request)
            return mpb.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tgrpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
    mgrpc.add_MetricsServiceServicer_to_server(Metrics(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", got
    server.stop(grace=None).wait(5)


def _gateway(fake: FakeOpenAI, policies: Path, otlp: dict[str, Any]) -> GatewayServer:
    cfg = config(fake.url, policies_dir=policies, cache={"enabled": False},
                 telemetry={"otlp": {"export_interval_s": 1, "timeout_s": 2, **otlp}})  # fmt: skip
    return GatewayServer(Settings(**cfg))


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_and_metrics_reach_a_collector(
    protocol: str, request: pytest.FixtureRequest, fake_openai: FakeOpenAI, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    endpoint, got = request.getfixturevalue(
        "http_collector" if protocol == "http/protobuf" else "grpc_collector"
    )
    monkeypatch.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    keys = write_policies(tmp_path)
    caller = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
    with _gateway(fake_openai, tmp_path, {"endpoint": endpoint, "protocol": protocol}) as gw:
        r = chat(gw.url, keys["research"], "auto")
        assert r.status_code == 200
        attrs = got.wait("chat auto", "gen_ai.client.token.usage")
        fake_openai.script.fail_next = 1  # two attempts: small-a's 500, then another model
        assert chat(gw.url, keys["research"], "auto", headers=caller).status_code == 200
        traced = got.wait_trace(TRACE_ID, 3)
    # the gateway's spans continue the caller's trace, under the caller's span ...
    request = traced.pop("chat auto")
    assert request["_parent_id"] == CALLER_SPAN and len(traced) == 2
    assert {a["_parent_id"] for a in traced.values()} == {request["_span_id"]}
    # ... and each upstream attempt was told its own span, so an upstream's spans nest under it
    sent = [f"00-{TRACE_ID}-{a['_span_id']}-01" for a in traced.values()]
    assert sorted(fake_openai.traceparents[-2:]) == sorted(sent)
    assert attrs["_parent_id"] == "" and attrs["_trace_id"] != TRACE_ID  # a trace of its own
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.response.model"] == "small-a"
    assert attrs["gen_ai.usage.input_tokens"] == 5
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["frugal.team"] == "research"
    assert attrs["frugal.cost_usd"] == r.headers["x-frugal-cost-usd"] == "0.0025"
    assert {n for n, _ in got.spans} >= {"chat auto", "chat small-a"}
    assert {s.otel for s in instruments.ALL[:2]} <= got.metrics


def test_a_collector_that_is_down_changes_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    keys = write_policies(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    for protocol in ("http/protobuf", "grpc"):
        with _gateway(fake_openai, tmp_path, {"endpoint": dead, "protocol": protocol}) as gw:
            t0 = time.perf_counter()
            for _ in range(5):
                r = chat(gw.url, keys["research"], "auto", stream=True)
                assert r.status_code == 200 and "[DONE]" in r.text
            assert time.perf_counter() - t0 < 5  # no request waits for the exporter


def exploding(request: Any) -> None:
    raise RuntimeError("exporter bug")


def test_an_exporter_or_sink_that_raises_changes_nothing(
    fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.telemetry import service
    from gateway.telemetry.service import Telemetry

    monkeypatch.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    keys = write_policies(tmp_path)
    start = Telemetry.start

    def exploding_start(settings: Settings, **kw: Any) -> Telemetry:
        return start(settings, **kw, span_sender=exploding)

    def broken_emit(*args: Any) -> None:
        raise ValueError("a bug in a sink")

    monkeypatch.setattr(Telemetry, "start", exploding_start)
    monkeypatch.setattr(service, "emit", broken_emit)
    with _gateway(fake_openai, tmp_path, {}) as gw:
        for model in ("auto", "always-large"):
            r = chat(gw.url, keys["research"], model)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        assert chat(gw.url, keys["broke"], "auto").status_code == 429


def test_recording_many_requests_exports_every_span() -> None:
    """What recording costs is measured by bench/gateway_bench.py (traced vs 10% traced);
    here: a burst of requests loses no span and counts no failure."""
    from gateway.telemetry.service import Telemetry
    from tests.telemetry.support import MemorySpans
    from tests.telemetry.test_spans import a_call

    settings = Settings(**config("http://127.0.0.1:9/v1"))
    sink = MemorySpans()
    t = Telemetry.start(settings, span_sender=sink, teams=["research"])
    for _ in range(1000):  # 3 spans each, within the queue
        t.record(a_call())
    assert t.failures == 0 and t.spans is not None
    assert t.spans.flush(10)
    spans = sink.spans()
    assert len(spans) == 3000 and t.spans.dropped == 0
    assert len({s.trace_id for s in spans}) == 1000
    assert all(len(r.resource_spans[0].scope_spans[0].spans) <= 512 for r in sink.requests)
    t.spans.shutdown(5)


def test_span_queue_and_export_failures_drop_spans_not_requests() -> None:
    from gateway.telemetry.spanwriter import SpanData, SpanWriter

    blocked = threading.Event()
    sent: list[Any] = []

    def slow(request: Any) -> None:
        blocked.wait(10)  # the collector hangs until released
        sent.append(request)

    writer = SpanWriter(slow, {"service.name": "t"}, "s", max_queue=10, batch=5, delay_s=0.01)
    span = SpanData("chat x", True, 1, 2, 0, 0, 1, {"k": "v"})
    for _ in range(30):
        writer.add([span])  # never blocks, whatever the collector does
    assert writer.dropped >= 10
    blocked.set()
    assert writer.flush(10)
    exported = sum(len(r.resource_spans[0].scope_spans[0].spans) for r in sent)
    assert exported + writer.dropped == 30
    writer.shutdown(5)

    failing = SpanWriter(exploding, {}, "s", batch=2, delay_s=0.01)
    failing.add([span, span, span])
    failing.flush(5)
    assert failing.failures >= 1 and failing.dropped == 3
    failing.shutdown(5)
