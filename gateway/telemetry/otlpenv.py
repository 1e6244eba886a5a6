"""Where and how OTLP data goes: `telemetry.otlp` from the configuration, with the standard
OpenTelemetry variables for what it leaves unset (the specification has code-level settings win
over the environment, and so do we):

    OTEL_EXPORTER_OTLP_ENDPOINT      base URL (/v1/traces, /v1/metrics appended for http)
    OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT   the full URL for one signal
    OTEL_EXPORTER_OTLP[_{SIGNAL}]_HEADERS      k=v,k2=v2 (values URL-encoded)
    OTEL_EXPORTER_OTLP[_{SIGNAL}]_COMPRESSION  gzip | none
    OTEL_EXPORTER_OTLP[_{SIGNAL}]_TIMEOUT      milliseconds
    OTEL_EXPORTER_OTLP[_{SIGNAL}]_PROTOCOL     http/protobuf | grpc
    OTEL_EXPORTER_OTLP[_{SIGNAL}]_INSECURE     true | false (gRPC)

Signal-specific variables win over the generic ones. Proxies: the http exporters follow
HTTPS_PROXY / HTTP_PROXY / NO_PROXY (urllib and requests read them), gRPC follows
`grpc_proxy` / `https_proxy` / `http_proxy` / `no_proxy` (grpc core reads them).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote

from pydantic import ValidationError

from gateway.telemetry.settings import OtlpSettings

Signal = Literal["traces", "metrics"]
_PREFIX = "OTEL_EXPORTER_OTLP_"


class OtlpEnvError(ValueError):
    """An OTEL_EXPORTER_OTLP_* variable holds a value that cannot be used."""


@dataclass(frozen=True)
class Export:
    """One signal's export, resolved."""

    url: str  # http/protobuf: the URL to POST to; grpc: the collector's endpoint
    protocol: Literal["http/protobuf", "grpc"]
    headers: dict[str, str] = field(default_factory=dict)
    compression: Literal["none", "gzip"] = "none"
    timeout_s: float = 5.0
    insecure: bool = True

    def __repr__(self) -> str:  # header values are credentials
        return f"Export({self.protocol} {self.url}, headers={sorted(self.headers)})"


def parse_headers(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise OtlpEnvError(f"{item.split('=')[0].strip()!r} is not a `name=value` pair")
        out[unquote(name.strip())] = unquote(value.strip())
    return out


def export_for(
    cfg: OtlpSettings, signal: Signal, env: Mapping[str, str] | None = None
) -> Export | None:
    """The export of `signal`, or None when neither the configuration nor the environment
    names an endpoint. Raises OtlpEnvError naming the variable at fault."""
    env = os.environ if env is None else env
    given = cfg.model_fields_set
    sig = f"{_PREFIX}{signal.upper()}_"

    def var(name: str) -> tuple[str, str] | None:
        for key in (sig + name, _PREFIX + name):
            if env.get(key, "").strip():
                return key, env[key].strip()
        return None

    update: dict[str, object] = {}
    full_url: str | None = None
    if "endpoint" not in given:
        if v := env.get(sig + "ENDPOINT", "").strip():
            full_url = v
            update["endpoint"] = v
        elif v := env.get(_PREFIX + "ENDPOINT", "").strip():
            update["endpoint"] = v
    for name, key, convert in (
        ("protocol", "PROTOCOL", str),
        ("compression", "COMPRESSION", str.lower),
        ("headers", "HEADERS", parse_headers),
        ("timeout_s", "TIMEOUT", lambda v: float(v) / 1000),
        ("insecure", "INSECURE", lambda v: v.lower() == "true"),
    ):
        if name in given or (found := var(key)) is None:
            continue
        try:
            update[name] = convert(found[1])
        except (ValueError, OtlpEnvError) as e:
            raise OtlpEnvError(f"{found[0]}: {e}") from None
    try:
        merged = OtlpSettings.model_validate({**cfg.model_dump(), **update})
    except ValidationError as e:
        names = ", ".join(sorted(k for k in env if k.startswith(_PREFIX)))
        raise OtlpEnvError(f"invalid OTLP settings from {names}: {e.errors()[0]['msg']}") from None
    if merged.endpoint is None or not getattr(merged, signal):
        return None
    url = merged.endpoint
    if merged.protocol == "http/protobuf" and full_url is None:
        url = f"{merged.endpoint}/v1/{signal}"
    return Export(url, merged.protocol, dict(merged.headers), merged.compression,
                  merged.timeout_s, merged.insecure)  # fmt: skip
