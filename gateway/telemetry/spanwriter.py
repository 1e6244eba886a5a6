"""Spans written straight as OTLP protobuf, batched and exported by a thread of our own.

The OpenTelemetry SDK's tracer cost ~0.3 ms of CPU per request for a request's three spans
(attribute cleaning under locks and span objects, then the exporter re-encoding them), the
largest single cost of a traced request. Here the request path only hands over plain
`SpanData`; the writer thread builds the OTLP messages and sends them, with the limits of the
SDK's batch processor: at most 4,096 spans queued (more are dropped and counted), sent in
batches of up to 512 at least every second. An export that fails is logged and its batch
dropped: a collector that is down costs log lines, never a request. The wire format is OTLP's
(tests/telemetry/test_otlp_export.py runs real HTTP and gRPC collectors).
"""

import email.utils
import gzip
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from gateway.telemetry.otlpenv import Export

log = logging.getLogger("frugal.telemetry")
Send = Callable[[ExportTraceServiceRequest], None]


@dataclass(frozen=True, slots=True)
class SpanData:
    """One finished span, as the request path hands it over (no protobuf work there)."""

    name: str
    server: bool  # kind SERVER (the request); else CLIENT (an upstream attempt)
    trace_id: int
    span_id: int
    parent_id: int  # 0: no parent
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]
    error: str | None = None  # status ERROR with this description


def any_value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[any_value(x) for x in v]))
    return AnyValue(string_value=str(v))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def to_proto(s: SpanData) -> Span:
    span = Span(
        trace_id=s.trace_id.to_bytes(16, "big"),
        span_id=s.span_id.to_bytes(8, "big"),
        name=s.name,
        kind=Span.SPAN_KIND_SERVER if s.server else Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=s.start_ns,
        end_time_unix_nano=s.end_ns,
        attributes=key_values(s.attributes),
    )
    if s.parent_id:
        span.parent_span_id = s.parent_id.to_bytes(8, "big")
    if s.error is not None:
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=s.error))
    return span


class SpanWriter:
    def __init__(
        self, send: Send, resource: Mapping[str, Any], scope: str, *,
        max_queue: int = 4096, batch: int = 512, delay_s: float = 1.0,
    ) -> None:  # fmt: skip
        self._send = send
        self._resource = Resource(attributes=key_values(resource))
        self._scope = InstrumentationScope(name=scope)
        self._max, self._batch, self._delay = max_queue, batch, delay_s
        self._queue: deque[SpanData] = deque()
        self._cv = threading.Condition()
        self._inflight = 0
        self._flushing = self._stopping = False
        self.dropped = 0  # spans not exported: queue full, or their export failed
        self.failures = 0  # exports that failed
        self._thread = threading.Thread(target=self._run, name="frugal-spans", daemon=True)
        self._thread.start()

    def add(self, spans: Sequence[SpanData]) -> None:
        """Queue a request's spans; never blocks on the export."""
        with self._cv:
            room = max(self._max - len(self._queue), 0)
            if room < len(spans):
                self.dropped += len(spans) - room
                spans = spans[:room]
            self._queue.extend(spans)
            if len(self._queue) >= self._batch:
                self._cv.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Export what is queued now; False if that took longer than `timeout_s`."""
        with self._cv:
            self._flushing = True
            self._cv.notify_all()
            return self._cv.wait_for(lambda: not self._queue and not self._inflight, timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self.flush(timeout_s)
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        self._thread.join(max(deadline - time.monotonic(), 0.0))

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(
                    lambda: self._stopping or self._flushing or len(self._queue) >= self._batch,
                    self._delay,
                )
                take = min(self._batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(take)]
                self._inflight = take
                if self._stopping and not batch:
                    return
            if batch:
                self._export(batch)
            with self._cv:
                self._inflight = 0
                if not self._queue:
                    self._flushing = False
                    self._cv.notify_all()

    def _export(self, batch: list[SpanData]) -> None:
        try:
            scope_spans = ScopeSpans(scope=self._scope, spans=[to_proto(s) for s in batch])
            resource_spans = ResourceSpans(resource=self._resource, scope_spans=[scope_spans])
            self._send(ExportTraceServiceRequest(resource_spans=[resource_spans]))
        except Exception as e:
            self.failures += 1
            self.dropped += len(batch)
            if self.failures == 1 or self.failures % 100 == 0:  # no log storm
                log.warning("span export failed (%d failures, %d spans dropped so far): %s",
                            self.failures, self.dropped, e)  # fmt: skip


RETRY_HTTP = frozenset({429, 502, 503, 504})  # OTLP/HTTP: retryable statuses
RETRY_GRPC = ("CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
              "DATA_LOSS")  # fmt: skip  # OTLP/gRPC: retryable codes


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A collector that redirects gets no second request: urllib would copy every header,
    the vendor's auth key included, to wherever the redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(when.timestamp() - time.time(), 0.0)


def retrying(
    attempt: Callable[[float], None], retryable: Callable[[Exception], float | None],
    timeout_s: float, sleep: Callable[[float], None] = time.sleep,
) -> None:  # fmt: skip
    """Run `attempt(seconds left)` until it succeeds, `retryable` says no (None), or
    `timeout_s` is spent. Waits what the collector asked (Retry-After), else an exponential
    backoff from 0.1 s with jitter, as the OTLP specification asks."""
    deadline = time.monotonic() + timeout_s
    n = 0
    while True:
        left = deadline - time.monotonic()
        try:
            attempt(max(left, 0.001))
            return
        except Exception as e:
            asked = retryable(e)
            if asked is None:
                raise
            wait = asked if asked > 0 else 0.1 * 2**n * (0.5 + random.random() / 2)  # noqa: S311
            if time.monotonic() + wait >= deadline:
                raise
            sleep(wait)
            n += 1


def sender(export: Export) -> Send:
    """The OTLP trace export: HTTP/protobuf POST to `export.url`, or gRPC; retried on 429 and
    503 (and the other retryable answers) within `timeout_s`, gzip when asked."""
    if export.protocol == "grpc":
        return _grpc_sender(export)
    head = {"Content-Type": "application/x-protobuf", **export.headers}
    if export.compression == "gzip":
        head["Content-Encoding"] = "gzip"
    opener = urllib.request.build_opener(_NoRedirects())  # proxies from the environment

    def http_retryable(e: Exception) -> float | None:
        if isinstance(e, urllib.error.HTTPError):
            if e.code not in RETRY_HTTP:
                return None
            return _retry_after(e.headers.get("Retry-After")) or 0.0
        return 0.0 if isinstance(e, urllib.error.URLError | TimeoutError | OSError) else None

    def send_http(request: ExportTraceServiceRequest) -> None:
        body = request.SerializeToString()
        if export.compression == "gzip":
            body = gzip.compress(body, compresslevel=6)

        def attempt(left: float) -> None:
            req = urllib.request.Request(export.url, body, head, method="POST")  # noqa: S310
            with opener.open(req, timeout=left) as resp:
                resp.read()

        retrying(attempt, http_retryable, export.timeout_s)

    return send_http


def _grpc_sender(export: Export) -> Send:
    import grpc  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    target = export.url.split("://", 1)[1]
    if export.insecure and export.url.startswith("http://"):
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
    stub = TraceServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = [(k.lower(), v) for k, v in export.headers.items()]
    compression = grpc.Compression.Gzip if export.compression == "gzip" else None

    def grpc_retryable(e: Exception) -> float | None:
        code = e.code() if isinstance(e, grpc.RpcError) else None
        return 0.0 if code is not None and code.name in RETRY_GRPC else None

    def send_grpc(request: ExportTraceServiceRequest) -> None:
        def attempt(left: float) -> None:
            stub.Export(request, metadata=metadata, timeout=left, compression=compression)

        retrying(attempt, grpc_retryable, export.timeout_s)

    return send_grpc
