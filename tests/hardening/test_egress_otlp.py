"""OTLP span export (telemetry/spanwriter.py) against real HTTP collectors on loopback: no auth
header follows a redirect (issue 12 #12), retries on 429/503 honouring Retry-After and bounded
by the timeout, gzip, the standard OTEL_EXPORTER_OTLP_* variables, and proxies (#13)."""

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from pydantic import ValidationError

from gateway.config import ConfigError, Settings
from gateway.telemetry.otlpenv import Export, OtlpEnvError, export_for
from gateway.telemetry.service import Telemetry
from gateway.telemetry.settings import OtlpSettings
from gateway.telemetry.spanwriter import SpanData, sender, to_proto
from tests.conftest import model_cfg
from tests.hardening.test_egress_proxy import PROXY_VARS, RecordingProxy

Reply = Callable[[int], tuple[int, dict[str, str]]]  # request number -> status, headers


class Collector:
    """Records each request (method, path, headers, body) and answers `reply(n)`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.got: list[tuple[str, str, dict[str, str], bytes]] = []
        self.times: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = len(outer.got)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.got.append((self.command, self.path, headers, body))
                outer.times.append(time.monotonic())
                status, headers = outer.reply(n)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def collectors() -> Iterator[Callable[[Reply], Collector]]:
    made: list[Collector] = []

    def make(reply: Reply) -> Collector:
        made.append(Collector(reply))
        return made[-1]

    yield make
    for c in made:
        c.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    import os

    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)


def request() -> ExportTraceServiceRequest:
    span = SpanData("chat m", True, 1, 2, 0, 10, 20, {"k": "v"})
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=[to_proto(span)])])
    return ExportTraceServiceRequest(resource_spans=[rs])


def http_export(url: str, **kw: Any) -> Export:
    return Export(url=url, protocol="http/protobuf", **kw)


def test_auth_headers_never_follow_a_redirect(collectors) -> None:  # type: ignore[no-untyped-def]
    elsewhere = collectors(lambda n: (200, {}))
    for code in (301, 302, 303, 307, 308):
        redirecting = collectors(lambda n: (code, {"Location": f"{elsewhere.url}/v1/traces"}))  # noqa: B023
        send = sender(http_export(f"{redirecting.url}/v1/traces", timeout_s=2,
                                  headers={"api-key": "vendor-secret"}))  # fmt: skip
        with pytest.raises(Exception, match=str(code)):
            send(request())
        assert redirecting.got and redirecting.got[0][2]["api-key"] == "vendor-secret"
    assert elsewhere.got == []  # the old exporter followed 301/302/303 with every header


def test_503_and_429_are_retried_honouring_retry_after(collectors) -> None:  # type: ignore[no-untyped-def]
    answers = [(503, {"Retry-After": "0.3"}), (429, {}), (200, {})]
    c = collectors(lambda n: answers[min(n, 2)])
    sender(http_export(f"{c.url}/v1/traces", timeout_s=5))(request())
    assert len(c.got) == 3
    assert c.times[1] - c.times[0] >= 0.25  # waited what the collector asked


def test_other_errors_are_not_retried_and_retries_end_at_the_timeout(collectors) -> None:  # type: ignore[no-untyped-def]
    bad = collectors(lambda n: (400, {}))
    with pytest.raises(Exception, match="400"):
        sender(http_export(f"{bad.url}/v1/traces", timeout_s=5))(request())
    assert len(bad.got) == 1
    down = collectors(lambda n: (503, {}))
    t0 = time.monotonic()
    with pytest.raises(Exception, match="503"):
        sender(http_export(f"{down.url}/v1/traces", timeout_s=0.8))(request())
    assert time.monotonic() - t0 < 3  # bounded by timeout_s (generous)
    assert len(down.got) >= 2


def test_gzip(collectors) -> None:  # type: ignore[no-untyped-def]
    c = collectors(lambda n: (200, {}))
    sender(http_export(f"{c.url}/v1/traces", compression="gzip"))(request())
    _, path, headers, body = c.got[0]
    assert path == "/v1/traces" and headers["content-encoding"] == "gzip"
    got = ExportTraceServiceRequest.FromString(gzip.decompress(body))
    assert got.resource_spans[0].scope_spans[0].spans[0].name == "chat m"


def test_the_standard_environment_variables() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%3Db,x-team = ops ",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "GZIP",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
    }
    traces = export_for(OtlpSettings(), "traces", env)
    assert traces == Export("http://collector:4318/v1/traces", "http/protobuf",
                            {"api-key": "a=b", "x-team": "ops"}, "gzip", 2.5)  # fmt: skip
    metrics = export_for(OtlpSettings(), "metrics", env)
    assert metrics is not None and metrics.url == "http://collector:4318/v1/metrics"
    assert metrics.compression == "none"  # the traces-only variable
    full = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://vendor.example/api/traces"}
    assert export_for(OtlpSettings(), "traces", full).url == "https://vendor.example/api/traces"  # type: ignore[union-attr]
    assert export_for(OtlpSettings(), "metrics", full) is None
    grpc = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert export_for(OtlpSettings(), "traces", grpc) == Export("http://c:4317", "grpc")
    # the configuration wins over the environment
    cfg = OtlpSettings(endpoint="http://mine:4318", headers={"a": "1"}, timeout_s=1)
    mine = export_for(cfg, "traces", env)
    assert mine is not None and mine.url == "http://mine:4318/v1/traces"
    assert mine.headers == {"a": "1"} and mine.timeout_s == 1 and mine.compression == "gzip"
    assert export_for(OtlpSettings(), "traces", {}) is None
    assert "a=b" not in repr(traces)


def test_headers_that_cannot_be_sent_are_refused() -> None:
    with pytest.raises(ValidationError, match="control character"):
        OtlpSettings(endpoint="http://c:4318", headers={"api-key": "secret\r\nX-Evil: 1"})
    with pytest.raises(ValidationError, match="field name"):
        OtlpSettings(endpoint="http://c:4318", headers={"bad name": "x"})
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
           "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret%0D%0AX-Evil: 1"}  # fmt: skip
    with pytest.raises(OtlpEnvError, match="OTEL_EXPORTER_OTLP_HEADERS"):
        export_for(OtlpSettings(), "traces", env)
    with pytest.raises(OtlpEnvError, match="OTEL_EXPORTER_OTLP_TIMEOUT"):
        export_for(OtlpSettings(), "traces", {**env, "OTEL_EXPORTER_OTLP_HEADERS": "",
                                               "OTEL_EXPORTER_OTLP_TIMEOUT": "soon"})  # fmt: skip


def test_telemetry_starts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(models={"m": model_cfg("http://127.0.0.1:1/v1", "m")},
                        telemetry={"otlp": {"metrics": False}})  # fmt: skip
    assert Telemetry.start(settings).spans is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    t = Telemetry.start(settings)
    assert t.spans is not None
    t.spans.shutdown(0.1)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "k=v\x01")
    with pytest.raises(ConfigError, match=r"telemetry\.otlp"):
        Telemetry.start(settings)


def test_export_through_the_proxy_and_no_proxy(collectors, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    c = collectors(lambda n: (200, {}))
    port = c.httpd.server_address[1]
    loop = asyncio.new_event_loop()
    proxy = RecordingProxy()
    proxy.server = loop.run_until_complete(asyncio.start_server(proxy.handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        sender(http_export(f"http://collector.test:{port}/v1/traces"))(request())
        assert proxy.lines == [f"POST http://collector.test:{port}/v1/traces HTTP/1.1"]
        assert len(c.got) == 1
        monkeypatch.setenv("NO_PROXY", "collector.test")
        with pytest.raises(OSError):  # direct: the name does not resolve
            sender(http_export(f"http://collector.test:{port}/v1/traces", timeout_s=0.3))(request())
        assert len(proxy.seen) == 1
    finally:
        loop.call_soon_threadsafe(proxy.server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_grpc_export_through_the_proxy_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from concurrent import futures

    import grpc  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

    calls: list[str] = []
    metadata: list[dict[str, str]] = []

    class Traces(tgrpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, req: Any, context: Any) -> Any:
            calls.append(req.resource_spans[0].scope_spans[0].spans[0].name)
            metadata.append(dict(context.invocation_metadata()))
            if len(calls) == 1:  # the first call: come back later
                context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
            return tpb.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tgrpc.add_TraceServiceServicer_to_server(Traces(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    loop = asyncio.new_event_loop()
    proxy = RecordingProxy()
    proxy.server = loop.run_until_complete(asyncio.start_server(proxy.handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("grpc_proxy", proxy.url)
        export = Export(f"http://collector.test:{port}", "grpc", {"api-key": "k"}, "gzip", 5.0)
        sender(export)(request())
        assert calls == ["chat m", "chat m"]  # UNAVAILABLE, then retried
        assert metadata[0]["api-key"] == "k"
        assert proxy.lines == [f"CONNECT collector.test:{port} HTTP/1.1"]
    finally:
        server.stop(grace=None).wait(5)
        loop.call_soon_threadsafe(proxy.server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
