"""Shared by the telemetry tests: a configuration with prices that make every request's cost
a round number of cents, policies for two teams, and known traffic.

Prices (USD per million tokens) and the fake upstream's usage (prompt = words + 3, completion
= 10 tokens for a chat; "Say hello" is 5 prompt tokens):
    small-a  input 100,  output 200   -> 5 * 100e-6 + 10 * 200e-6  = $0.0025 per request
    large-a  input 2000, output 8000  -> 5 * 2000e-6 + 10 * 8000e-6 = $0.09 per request
A request routed to small-a on route `auto` saves 0.09 - 0.0025 = $0.0875."""

import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.keys import create_key
from tests.support.servers import ROOT, Process, free_port

UPSTREAM_KEY_ENV = "FRUGAL_TEST_UPSTREAM_KEY"
ADMIN_KEY = "admin-test-key-0123456789"
SMALL = Decimal("0.0025")
LARGE = Decimal("0.09")
MSG = [{"role": "user", "content": "Say hello"}]


def config(upstream_url: str, **over: Any) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    fast = {"connect_s": 1, "read_s": 5}
    key = {"api_key_env": UPSTREAM_KEY_ENV, "timeouts": fast}
    models = {
        "small-a": {"provider": "openai", "model": "fake-small", "base_url": upstream_url,
                    "tier": "small", "price": {"input_per_mtok": "100", "output_per_mtok": "200"},
                    **key},
        "large-a": {"provider": "openai", "model": "fake-large", "base_url": upstream_url,
                    "tier": "large", "price": {"input_per_mtok": "2000",
                                               "output_per_mtok": "8000"}, **key},
        "dead": {"provider": "openai", "model": "dead", "base_url": dead, "tier": "medium",
                 "timeouts": fast, "price": {"input_per_mtok": 0, "output_per_mtok": 0}},
    }  # fmt: skip
    cfg: dict[str, Any] = {
        "models": models,
        "routes": {
            "auto": {"tiers": ["small", "large"], "threshold": 0.5},
            "always-large": {"tiers": ["small", "large"], "threshold": 0.0},
            "deadfirst": {"tiers": ["medium", "large"], "threshold": 1.0},
        },
        "resilience": {"retries": 0, "backoff_s": 0.01, "cooldown_s": 0},
        "cache": {"enabled": True},
        "budget": {"reload_interval_s": 0},
        "telemetry": {"metrics_open": False},
    }
    cfg.update(over)
    return cfg


POLICIES = {
    "timezone": "UTC",
    "teams": {
        "research": {"budgets": {"month": "100.00"}},
        "support": {"budgets": {"day": "5.00", "month": "50.00"}},
        "broke": {"budgets": {"month": "0.001"}, "hard": {"action": "refuse"}},
    },
}


def write_policies(folder: Path) -> dict[str, str]:
    """Team policies plus one key per team; returns team -> key."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "teams.yaml").write_text(yaml.safe_dump(POLICIES))
    return {team: create_key(folder, team) for team in POLICIES["teams"]}


def chat(url: str, key: str, model: str, *, stream: bool = False, content: str = "Say hello",
         headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}],
                            "temperature": 0, "max_tokens": 16}  # fmt: skip
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    h = {"authorization": f"Bearer {key}", **(headers or {})}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=h, timeout=30)


def scrape(url: str, key: str | None = ADMIN_KEY) -> str:
    h = {"authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{url}/metrics", headers=h, timeout=10)
    r.raise_for_status()
    return r.text


def serve(config_path: Path, workers: int, env: dict[str, str]) -> tuple[Process, str]:
    """`frugal serve` as a real subprocess; returns it and its base URL once /healthz answers."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "frugal"), "serve", "--config", str(config_path),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--no-local"]  # fmt: skip
    proc = Process(cmd, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"frugal serve exited:\n{proc.output()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.stop()
    raise TimeoutError("frugal serve did not become healthy")


__all__ = ["ROOT"]


@dataclass(frozen=True)
class SpanView:
    """One exported span, decoded from the OTLP request the span writer sent."""

    name: str
    server: bool
    trace_id: int
    span_id: int
    parent_id: int  # 0: none
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: str | None  # the status description when the status is ERROR
    resource: dict[str, Any]


def _decoded(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_decoded(x) for x in v.array_value.values)
    return getattr(v, kind)


class MemorySpans:
    """A span sender (`Telemetry.start(span_sender=...)`) that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> None:
        self.requests.append(request)

    def spans(self) -> list[SpanView]:
        from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

        out = []
        for req in self.requests:
            for rs in req.resource_spans:
                resource = {kv.key: _decoded(kv.value) for kv in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        failed = s.status.code == Status.STATUS_CODE_ERROR
                        error = s.status.message if failed else None
                        out.append(SpanView(
                            s.name, s.kind == Span.SPAN_KIND_SERVER,
                            int.from_bytes(s.trace_id, "big"), int.from_bytes(s.span_id, "big"),
                            int.from_bytes(s.parent_span_id, "big"),
                            s.start_time_unix_nano, s.end_time_unix_nano,
                            {kv.key: _decoded(kv.value) for kv in s.attributes}, error, resource,
                        ))  # fmt: skip
        return out
