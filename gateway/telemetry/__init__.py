"""Traces and metrics for every finished request: OpenTelemetry (OTLP over HTTP or gRPC) and a
Prometheus /metrics endpoint that is right with several worker processes.

Kept import-light on purpose: `gateway.config` imports `gateway.telemetry.settings`. The
runtime builds `gateway.telemetry.service.Telemetry`; `gateway.record` reaches it through
`gateway.telemetry.hook`."""
