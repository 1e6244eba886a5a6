"""All of Frugal's telemetry in one object, built once at start-up.

`record(call)` runs on the event loop for every finished request: it works out the request's
facts once, adds them to each sink (Prometheus, OpenTelemetry metrics) and writes the spans.
It never raises and does no I/O: Prometheus values are in memory (or memory-mapped files with
several workers) and OpenTelemetry exports on its own threads."""

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics.export import MetricReader

from gateway.call import Call
from gateway.config import ConfigError, Settings
from gateway.telemetry import otel, otlpenv
from gateway.telemetry.facts import Catalog, facts_of
from gateway.telemetry.instruments import Sink, emit, zero_series
from gateway.telemetry.prom import PromSink
from gateway.telemetry.settings import TelemetrySettings
from gateway.telemetry.spans import emit_spans
from gateway.telemetry.spanwriter import Send, SpanWriter, sender
from gateway.telemetry.tracecontext import Trace, start_trace

if TYPE_CHECKING:
    from gateway.policies import Policies
    from gateway.store.base import Store

log = logging.getLogger("frugal.telemetry")


class Telemetry:
    def __init__(self, cfg: TelemetrySettings, catalog: Catalog) -> None:
        self.cfg = cfg
        self.catalog = catalog
        self.prom: PromSink | None = None
        self.otel_metrics: otel.OtelSink | None = None
        self.spans: SpanWriter | None = None
        self.sinks: list[Sink] = []
        self.failures = 0

    @classmethod
    def start(
        cls, settings: Settings, *, teams: Iterable[str] = (),
        span_sender: Send | None = None, metric_reader: MetricReader | None = None,
    ) -> "Telemetry":  # fmt: skip
        """Build the sinks `settings.telemetry` asks for, with the counters of `teams` at 0.
        The exporter arguments replace the OTLP exporters (tests use in-memory ones)."""
        cfg = settings.telemetry
        t = cls(cfg, Catalog.of(settings))
        if not cfg.enabled:
            return t
        if cfg.prometheus:
            t.prom = PromSink()
            t.sinks.append(t.prom)
        try:  # the configuration, then the OTEL_EXPORTER_OTLP_* variables
            metrics_to = otlpenv.export_for(cfg.otlp, "metrics")
            traces_to = otlpenv.export_for(cfg.otlp, "traces")
        except otlpenv.OtlpEnvError as e:
            raise ConfigError(f"telemetry.otlp: {e}") from None
        if metric_reader is None and metrics_to is not None:
            metric_reader = otel.metric_reader(metrics_to, cfg.otlp.export_interval_s)
        if metric_reader is not None:
            t.otel_metrics = otel.OtelSink(cfg, metric_reader)
            t.sinks.append(t.otel_metrics)
        if span_sender is None and traces_to is not None:
            span_sender = sender(traces_to)
        if span_sender is not None:
            resource = otel.resource(cfg).attributes
            t.spans = SpanWriter(span_sender, resource, otel.SCOPE)
        if t.prom is not None:
            for spec, labels in zero_series(t.catalog, teams):
                t.prom.add(spec, 0, labels)
        return t

    def record(self, call: Call) -> None:
        """Never raises: telemetry must not change a request's outcome."""
        if not self.sinks and self.spans is None:
            return
        try:
            f = facts_of(call, self.catalog)
            for sink in self.sinks:
                emit(f, sink)
            if self.spans is not None:
                # a call that did not come through the front door gets its trace here
                trace = call.trace or start_trace(None, self.cfg.otlp.trace_sample_ratio)
                if trace.sampled:  # head sampling, decided when the trace started
                    spans = emit_spans(call, trace, f, self.catalog, self.cfg.capture_content)
                    self.spans.add(spans)
        except Exception:
            self.failures += 1
            if self.failures == 1 or self.failures % 1000 == 0:  # no log storm on the hot path
                log.exception("telemetry failed for request %s (%d failures so far)",
                              call.request_id, self.failures)  # fmt: skip

    def trace_for(self, header: str | None) -> Trace | None:
        """A request's trace when tracing is on: the caller's (`traceparent`, with its sampling
        decision), or a new one sampled at `otlp.trace_sample_ratio`. Metrics always count
        every request."""
        if self.spans is None:
            return None
        return start_trace(header, self.cfg.otlp.trace_sample_ratio)

    async def metrics_text(self, store: "Store", policies: "Policies") -> bytes:
        """The Prometheus exposition, with budget gauges read from the store now."""
        if self.prom is None:
            return b""
        extra = []
        if self.cfg.budget_gauges:
            from gateway.telemetry.budgets import budget_families

            extra = await budget_families(store, policies)
        return self.prom.render(extra)

    def _shutdown(self) -> None:
        timeout = self.cfg.otlp.timeout_s
        for name, stop in (("metrics", self.otel_metrics), ("traces", self.spans)):
            if stop is None:
                continue
            try:
                stop.shutdown(timeout)
            except Exception:
                log.warning("telemetry %s shutdown failed", name, exc_info=True)

    async def close(self) -> None:
        """Flush and stop the exporters, waiting at most a little over their timeout."""
        if self.otel_metrics is None and self.spans is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self._shutdown),
                                   self.cfg.otlp.timeout_s * 2 + 1)  # fmt: skip
        except TimeoutError:
            log.warning("telemetry exporters did not stop in time; dropping what is queued")
