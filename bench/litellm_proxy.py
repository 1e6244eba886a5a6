"""LiteLLM's proxy as an outside anchor for the gateway benchmark: the same fake upstream, the same
load generator, another OpenAI-compatible gateway.

LiteLLM lives in its own virtual environment, never the repo's .venv (which pins the litellm
*library* for the gateway and must not gain the proxy's ~100 extra packages):
~/.cache/frugal/bench-litellm-<version>, created once by `ensure_venv` with
`pip install litellm[proxy]==<version> opentelemetry-sdk==1.45.2` (about a minute, ~0.7 GB) and
reused while its marker file names those requirements.

Why opentelemetry-sdk: the proxy imports litellm.integrations.otel.logger in its auth step on every
request, and that module needs opentelemetry.sdk, which the proxy extra does not install. The
import fails, is caught, and, failed imports not being cached, is retried on each request: in a
py-spy profile at 16 clients it was 9% of the proxy's samples (about a quarter of its request
handling). With the SDK installed (LiteLLM's Docker image has it) that step drops to 0.2% and no
other OpenTelemetry work shows up, as nothing is configured to export.

Pinned version: LITELLM_VERSION below, 1.108.7. The repo's own pin, 1.110.2, cannot be installed
with the proxy extra: from 1.110.0 on it requires `litellm-proxy==<same version>`, which PyPI does
not have; 1.109.x requires litellm-proxy-extras 0.4.113 and 1.108.14 requires 0.4.110.post1,
neither published (newest is 0.4.110). 1.108.7 resolves, is the version of the earlier field
notes, and is far from the two trojanized releases (1.82.7, 1.82.8).

Settings, chosen to measure the proxy's request path and nothing else (as LiteLLM's own
production page advises, less the database and alerting):
- config.yaml: each model name maps to `openai/<name>` at <upstream>/v1 with a dummy api_key;
  `set_verbose: false`; `disable_spend_logs` and `disable_error_logs` (nothing is written anyway:
  there is no database).
- no database (DATABASE_URL and every LITELLM_* / REDIS_* variable removed from the environment),
  so no spend tracking, no key table, no Redis.
- no master key, so no per-request key check, like the Frugal gateway in bench/gateway_bench.py
  (anonymous team). LiteLLM refuses to start without a key unless
  `general_settings.dangerously_permit_weak_or_unset_master_key: true`, which the config sets;
  the load generator therefore sends no Authorization header (LOADGEN_HEADERS is empty).
- LITELLM_LOCAL_MODEL_COST_MAP=True: the bundled cost map, no fetch from GitHub at start.
- LITELLM_TELEMETRY_DISABLED=True: LiteLLM's telemetry vetoed.
- LITELLM_LOG=ERROR: LiteLLM's loggers and uvicorn (log_level, so no access-log line per
  request) at ERROR. Note the Frugal gateway in gateway_bench.py logs at INFO by default.
- server: what `litellm --num_workers N` runs: uvicorn with uvloop (LiteLLM forces it) and h11,
  since the proxy extra does not install httptools (the Frugal gateway has httptools).
- after it answers /health/liveliness, a few JSON and streamed completions per worker are sent
  and checked (choices; SSE `data:` events and `[DONE]`), paying LiteLLM's lazy imports (the
  first completion takes ~0.5 s) before any measurement.

    .venv/bin/python bench/litellm_proxy.py [--duration 3] [--repeat 2] [--workers 1]
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from procs import (
    Child,
    descendants,
    free_port,
    python,
    tree_cpu_s,
    tree_rss_mb,
    wait_http,
    wait_port,
)

LITELLM_VERSION = "1.108.7"
OTEL_SDK = "opentelemetry-sdk==1.45.2"  # same as the opentelemetry-api that litellm resolves to
REQUIREMENTS = [f"litellm[proxy]=={LITELLM_VERSION}", OTEL_SDK]
MARKER = ".frugal-bench-complete"
BENCH = Path(__file__).resolve().parent
CHAT = "/v1/chat/completions"
LOADGEN_HEADERS: dict[str, str] = {}  # no master key, so nothing to send
PROXY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "LITELLM_LOG": "ERROR",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
}
DROPPED_ENV_PREFIXES = ("LITELLM_", "REDIS_", "DATABASE_URL", "DIRECT_URL", "OPENAI_")


def log(msg: str) -> None:
    print(f"[litellm-proxy] {msg}", file=sys.stderr, flush=True)


def default_venv() -> Path:
    return Path.home() / ".cache" / "frugal" / f"bench-litellm-{LITELLM_VERSION}"


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def ensure_venv(path: Path | None = None) -> Path:
    """The `litellm` executable of a venv holding REQUIREMENTS, created and installed on first
    use (reused while its marker names them). Progress and timing go to stderr."""
    path = (path or default_venv()).expanduser()
    exe = path / "bin" / "litellm"
    marker = path / MARKER
    wanted = " ".join(REQUIREMENTS)
    if marker.is_file() and marker.read_text().splitlines()[:1] == [wanted] and exe.exists():
        log(f"reusing {path} ({wanted})")
        return exe
    if path.exists() and any(path.iterdir()) and not (path / "pyvenv.cfg").exists():
        raise RuntimeError(f"{path} exists and is not a venv; refusing to clear it")
    t0 = time.monotonic()
    log(f"creating venv {path} (python {sys.version.split()[0]})")
    venv.EnvBuilder(with_pip=True, clear=True, symlinks=True).create(path)
    py = str(path / "bin" / "python")
    log(f"pip install {wanted} (takes about a minute)")
    subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check",
                    "--progress-bar", "off", *REQUIREMENTS],
                   stdout=sys.stderr, check=True)  # fmt: skip
    got = subprocess.run([py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    if got != LITELLM_VERSION or not exe.exists():
        raise RuntimeError(f"{path}: litellm {got!r} installed, {LITELLM_VERSION} wanted")
    took = time.monotonic() - t0
    size_mb = dir_size(path) / 1e6
    marker.write_text(f"{wanted}\ninstalled in {took:.0f} s, {size_mb:.0f} MB\n")
    log(f"installed {wanted} in {took:.0f} s; venv {size_mb:.0f} MB")
    return exe


def write_config(tmp: Path, upstreams: dict[str, str]) -> Path:
    cfg: dict[str, Any] = {
        "model_list": [{"model_name": name,
                        "litellm_params": {"model": f"openai/{name}",
                                           "api_base": base.rstrip("/") + "/v1",
                                           "api_key": "sk-bench-dummy"}}
                       for name, base in upstreams.items()],
        "litellm_settings": {"set_verbose": False},
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True,
                             "disable_spend_logs": True, "disable_error_logs": True},
    }  # fmt: skip
    path = tmp / "litellm-config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def proxy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES)}
    env.update(PROXY_ENV)
    return env


def post(base: str, model: str, stream: bool, timeout_s: float = 30.0) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": 32,
                            "messages": [{"role": "user", "content": "warm-up"}]}  # fmt: skip
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"Content-Type": "application/json", **LOADGEN_HEADERS}
    req = urllib.request.Request(base + CHAT, data=orjson.dumps(body), headers=headers)
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        data: bytes = r.read()
        return data


def check_answers(base: str, model: str) -> None:
    """One JSON and one streamed completion, checked the way loadgen.py checks them."""
    if b'"choices"' not in post(base, model, stream=False):
        raise RuntimeError("LiteLLM proxy: JSON completion without choices")
    events = [ln for ln in post(base, model, stream=True).splitlines() if ln.startswith(b"data:")]
    if len(events) < 3 or events[-1].strip() != b"data: [DONE]":
        raise RuntimeError(f"LiteLLM proxy: bad stream ({len(events)} data: events)")


def wait_ready(base: str, child: Child, timeout_s: float = 120.0) -> None:
    wait_http(f"{base}/health/liveliness", child, timeout_s)


def start_litellm_proxy(
    upstream_base: str | Mapping[str, str],
    models: list[str] | None,
    port: int,
    workers: int = 1,
    *,
    log_dir: Path | None = None,
    exe: Path | None = None,
) -> Child:
    """LiteLLM's proxy on 127.0.0.1:port serving `models` from upstream_base (http://host:port),
    or, when upstream_base is a mapping {model: base}, each model from its own upstream (models
    may then be None), live and warmed up (see the module docstring for its settings). Its
    config and log go to log_dir (a new temporary directory by default). Stop it with
    child.stop()."""
    if isinstance(upstream_base, str):
        upstreams = dict.fromkeys(models or [], upstream_base)
    else:
        upstreams = {m: upstream_base[m] for m in (models or list(upstream_base))}
    if not upstreams:
        raise ValueError("start_litellm_proxy: no model to serve")
    exe = exe or ensure_venv()
    tmp = log_dir or Path(tempfile.mkdtemp(prefix="frugal-litellm-"))
    cfg = write_config(tmp, upstreams)
    cmd = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", str(workers)]  # fmt: skip
    t0 = time.monotonic()
    child = Child("litellm-proxy", cmd, tmp, proxy_env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, child, timeout_s=120)
        wait_ready(base, child)
        for _ in range(4 * workers):  # new connection each: spreads over the workers
            for model in upstreams:
                check_answers(base, model)
    except BaseException:
        child.stop()
        raise
    log(f"LiteLLM proxy {LITELLM_VERSION} ready on {base} ({workers} worker(s)) "
        f"in {time.monotonic() - t0:.1f} s; log {child.log_path}")  # fmt: skip
    return child


# --- the anchor benchmark: `python bench/litellm_proxy.py` ---


@dataclass
class Row:
    target: str
    base: str
    model: str
    server: Child
    stream: bool
    clients: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def best(self) -> dict[str, Any]:
        return max(self.runs, key=lambda r: r["rps"])


def run_loadgen(row: Row, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python(), str(BENCH / "loadgen.py"), "--url", row.base + CHAT, "--model", row.model,
           "--concurrency", str(row.clients), "--duration", str(args.duration),
           "--warmup", str(args.warmup)]  # fmt: skip
    if row.stream:
        cmd.append("--stream")
    cpu0 = tree_cpu_s(row.server.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120,
                         check=True, start_new_session=True)  # fmt: skip
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    cpu = tree_cpu_s(row.server.pid) - cpu0
    result["server_cpu_us_per_req"] = cpu * 1e6 / max(result["completed_total"], 1)
    return result


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def table(rows: list[Row]) -> list[str]:
    lines = ["| mode | clients | target | p50 ms | p99 ms | req/s | first chunk p50 ms "
             "| added p50 ms | added p99 ms | errors | server CPU per request |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        b = r.best()
        d = next(o for o in rows if o.target == "upstream direct" and
                 (o.stream, o.clients) == (r.stream, r.clients)).best()  # fmt: skip
        added = ("", "") if r.target == "upstream direct" else \
            (fmt(b["p50_ms"] - d["p50_ms"]), fmt(b["p99_ms"] - d["p99_ms"]))  # fmt: skip
        lines.append(
            f"| {'stream' if r.stream else 'JSON'} | {r.clients} | {r.target} "
            f"| {fmt(b['p50_ms'])} | {fmt(b['p99_ms'])} | {b['rps']:,.0f} "
            f"| {fmt(b['first_chunk_p50_ms'])} | {added[0]} | {added[1]} | {b['errors']} "
            f"| {b['server_cpu_us_per_req']:,.0f} µs |"
        )
    return lines


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=2, help="runs per row, best (req/s) reported")
    p.add_argument("--clients", default="1,16", help="comma-separated client counts")
    p.add_argument("--workers", type=int, default=1, help="LiteLLM proxy workers")
    p.add_argument("--venv", type=Path, help=f"venv path (default {default_venv()})")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    return p.parse_args()


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    clients = [int(c) for c in args.clients.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="frugal-litellm-bench-"))
    upstream: Child | None = None
    proxy: Child | None = None
    try:
        exe = ensure_venv(args.venv)
        up_port, px_port = free_port(), free_port()
        upstream = Child("upstream-fast", [python(), str(BENCH / "fake_upstream.py"),
                                           "--port", str(up_port)], tmp)  # fmt: skip
        wait_port(up_port, upstream)
        up_base = f"http://127.0.0.1:{up_port}"
        proxy = start_litellm_proxy(up_base, ["bench", "fast-small"], px_port, args.workers,
                                    log_dir=tmp, exe=exe)  # fmt: skip
        rss_idle = int(sum(tree_rss_mb(proxy.pid)) * 1024)
        px_base = f"http://127.0.0.1:{px_port}"
        target = f"LiteLLM proxy {LITELLM_VERSION}, {args.workers} worker(s)"
        rows = [Row(name, base, "bench", server, s, c)
                for s in (False, True) for c in clients
                for name, base, server in (("upstream direct", up_base, upstream),
                                           (target, px_base, proxy))]  # fmt: skip
        total = len(rows) * args.repeat
        for rep in range(args.repeat):
            for i, row in enumerate(rows):
                res = run_loadgen(row, args)
                row.runs.append(res)
                log(f"[{rep * len(rows) + i + 1}/{total}] {'stream' if row.stream else 'json'} "
                    f"c={row.clients} {row.target}: {res['rps']:.0f} req/s "
                    f"p50 {fmt(res['p50_ms'])} ms errors {res['errors']}")  # fmt: skip
        rss_after = int(sum(tree_rss_mb(proxy.pid)) * 1024)
        nproc = len(descendants(proxy.pid))
        print("\n".join([
            f"### LiteLLM proxy {LITELLM_VERSION} against the fast fake upstream", "",
            *table(rows), "",
            f"LiteLLM proxy RSS (VmRSS, {nproc} process(es)): {rss_idle / 1024:.0f} MiB after "
            f"warm-up, {rss_after / 1024:.0f} MiB after the load.",
            f"Machine: {os.cpu_count()} cores; load generator, proxy and upstream share them. "
            f"{args.warmup:g} s warm-up + {args.duration:g} s measured per row, best of "
            f"{args.repeat} interleaved runs by req/s. Added = proxy - direct at the same load.",
        ]))  # fmt: skip
        if args.json:
            out = {"litellm_version": LITELLM_VERSION, "workers": args.workers,
                   "rss_kb_idle": rss_idle, "rss_kb_after_load": rss_after,
                   "rows": [{"target": r.target, "stream": r.stream, "clients": r.clients,
                             "runs": r.runs, "best": r.best()} for r in rows]}  # fmt: skip
            args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        return 0
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        return 130
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
        log(f"failed: {e}")
        for c in (proxy, upstream):
            if c is not None:
                log(f"--- {c.name} log tail:\n{c.tail(1500)}")
        return 1
    finally:
        if proxy is not None:
            proxy.stop()
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
