"""The OpenTelemetry side: a meter and a tracer provider of our own (never the global ones), with
OTLP exporters over HTTP or gRPC. Export runs on the SDK's background threads; a collector that
is down costs log lines, never a request."""

import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Tracer

from gateway.telemetry.instruments import ALL, Spec
from gateway.telemetry.settings import OtlpSettings, TelemetrySettings

log = logging.getLogger("frugal.telemetry")
SCOPE = "frugal.gateway"
# Prometheus label -> OpenTelemetry attribute key, where the conventions name one.
OTEL_KEY = {
    "gen_ai_operation_name": "gen_ai.operation.name",
    "gen_ai_provider_name": "gen_ai.provider.name",
    "gen_ai_request_model": "gen_ai.request.model",
    "gen_ai_response_model": "gen_ai.response.model",
    "gen_ai_token_type": "gen_ai.token.type",
    "error_type": "error.type",
}


def span_exporter(cfg: OtlpSettings) -> SpanExporter:
    assert cfg.endpoint is not None
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as G

        return G(endpoint=cfg.endpoint, insecure=cfg.insecure, headers=cfg.headers,
                 timeout=cfg.timeout_s)  # fmt: skip
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H

    return H(endpoint=f"{cfg.endpoint}/v1/traces", headers=cfg.headers, timeout=cfg.timeout_s)


def metric_reader(cfg: OtlpSettings) -> MetricReader:
    assert cfg.endpoint is not None
    exporter: Any
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as G

        exporter = G(endpoint=cfg.endpoint, insecure=cfg.insecure, headers=cfg.headers,
                     timeout=cfg.timeout_s)  # fmt: skip
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as H,
        )

        exporter = H(endpoint=f"{cfg.endpoint}/v1/metrics", headers=cfg.headers,
                     timeout=cfg.timeout_s)  # fmt: skip
    return PeriodicExportingMetricReader(
        exporter, export_interval_millis=cfg.export_interval_s * 1000,
        export_timeout_millis=cfg.timeout_s * 1000,
    )  # fmt: skip


def resource(cfg: TelemetrySettings) -> Resource:
    return Resource.create({"service.name": cfg.service_name})


def tracer_provider(
    cfg: TelemetrySettings, exporter: SpanExporter, ids: RandomIdGenerator | None = None
) -> TracerProvider:
    provider = TracerProvider(resource=resource(cfg), id_generator=ids)
    timeout_ms = cfg.otlp.timeout_s * 1000
    batch = BatchSpanProcessor(exporter, max_queue_size=4096, export_timeout_millis=timeout_ms)
    provider.add_span_processor(batch)
    return provider


class PresetIds(RandomIdGenerator):
    """Random ids, except the next trace or span id when spans.py chose it beforehand (it sets
    `trace_id` / `span_id` right before starting the span; used once, then random again)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        preset, self.trace_id = self.trace_id, 0
        return preset or super().generate_trace_id()

    def generate_span_id(self) -> int:
        preset, self.span_id = self.span_id, 0
        return preset or super().generate_span_id()


def tracer_of(provider: TracerProvider) -> Tracer:
    return provider.get_tracer(SCOPE)


class OtelSink:
    """The same instruments as the Prometheus side, as OpenTelemetry instruments."""

    def __init__(self, cfg: TelemetrySettings, reader: MetricReader) -> None:
        self.provider = MeterProvider(metric_readers=[reader], resource=resource(cfg))
        meter = self.provider.get_meter(SCOPE)
        self._inst: dict[str, Any] = {}
        self._keys = {s.otel: tuple(OTEL_KEY.get(k, k) for k in s.labels) for s in ALL}
        for spec in ALL:
            if spec.kind == "counter":
                self._inst[spec.otel] = meter.create_counter(spec.otel, spec.unit, spec.help)
            else:
                self._inst[spec.otel] = meter.create_histogram(
                    spec.otel, spec.unit, spec.help,
                    explicit_bucket_boundaries_advisory=list(spec.buckets),
                )  # fmt: skip

    def add(self, spec: Spec, value: float, labels: Sequence[str]) -> None:
        self._inst[spec.otel].add(value, self._attrs(spec, labels))

    def observe(self, spec: Spec, value: float, labels: Sequence[str]) -> None:
        self._inst[spec.otel].record(value, self._attrs(spec, labels))

    def _attrs(self, spec: Spec, labels: Sequence[str]) -> dict[str, str]:
        return {k: v for k, v in zip(self._keys[spec.otel], labels, strict=True) if v}

    def shutdown(self, timeout_s: float) -> None:
        self.provider.shutdown(timeout_millis=timeout_s * 1000)
