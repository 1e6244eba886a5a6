"""The `telemetry:` section of the configuration. Import-light: `gateway.config` imports it.

Everything export-related is off by default except the Prometheus endpoint, which answers only
with the admin key (`budget.admin_key_env`) unless `metrics_open: true`."""

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OtlpSettings(_Strict):
    # e.g. http://otel-collector:4318 (http/protobuf) or http://otel-collector:4317 (grpc);
    # null: no OTLP export at all.
    endpoint: str | None = None
    # OTLP transport: http/protobuf or grpc.
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    # Export spans.
    traces: bool = True
    # Export metrics.
    metrics: bool = True
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. an auth header for a vendor
    insecure: bool = True  # gRPC without TLS (a collector beside the gateway)
    # none or gzip.
    compression: Literal["none", "gzip"] = "none"
    timeout_s: float = Field(default=5.0, gt=0, le=60)  # one export, its retries included
    # How often metrics are exported.
    export_interval_s: float = Field(default=15.0, ge=1)
    # Share of requests whose spans are exported. Every request is traced by default; building
    # and exporting a request's spans costs about 0.1 ms of CPU (spanwriter.py), so very busy
    # gateways may sample (e.g. 0.1). Metrics always count every request.
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("headers")
    @classmethod
    def _sendable(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():  # a CR or LF would split the header line
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):  # RFC 9110 token
                raise ValueError(f"header name {name!r} is not a valid HTTP field name")
            if not (value.isascii() and value.isprintable()):
                raise ValueError(f"header {name!r} holds a control character (CR, LF, ...)")
        return v


class TelemetrySettings(_Strict):
    enabled: bool = True  # the master switch: false records nothing but the log line
    # OpenTelemetry service.name.
    service_name: str = "frugal-gateway"
    prometheus: bool = True  # serve /metrics
    metrics_open: bool = False  # /metrics without the admin key
    budget_gauges: bool = True  # read budget standings from the store at scrape time
    # Prompt and completion text on spans (gen_ai.input.messages / gen_ai.output.messages).
    capture_content: bool = False
    otlp: OtlpSettings = OtlpSettings()
