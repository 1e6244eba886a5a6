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
  the load generator therefore sends no Authorization header.
- LITELLM_LOCAL_MODEL_COST_MAP=True: the bundled cost map, no fetch from GitHub at start.
- LITELLM_TELEMETRY_DISABLED=True: LiteLLM's telemetry vetoed.
- LITELLM_LOG=ERROR: LiteLLM's loggers and uvicorn (log_level, so no access-log line per
  request) at ERROR. Note the Frugal gateway in gateway_bench.py logs at INFO by default.
- server: what `litellm --num_workers N` runs: uvicorn with uvloop (LiteLLM forces it) and h11,
  since the proxy extra does not install httptools (the Frugal gateway has httptools).
- after it answers /health/liveliness, a few JSON and streamed completions per worker are sent
  and checked (choices; SSE `data:` events and `[DONE]`), paying LiteLLM's lazy imports (the
  first completion takes ~0.5 s) before any measurement.

bench/gateway_bench.py starts it (`start_litellm_proxy`) and measures it with the other targets.
"""

import os
import subprocess
import sys
import time
import urllib.request
import venv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml
from procs import (
    Child,
    wait_http,
    wait_port,
)

LITELLM_VERSION = "1.108.7"
OTEL_SDK = "opentelemetry-sdk==1.45.2"  # same as the opentelemetry-api that litellm resolves to
REQUIREMENTS = [f"litellm[proxy]=={LITELLM_VERSION}", OTEL_SDK]
MARKER = ".frugal-bench-complete"
BENCH = Path(__file__).resolve().parent
CHAT = "/v1/chat/completions"
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
    headers = {"Content-Type": "application/json"}
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


def start_litellm_proxy(
    upstreams: Mapping[str, str], port: int, log_dir: Path, workers: int = 1
) -> Child:
    """LiteLLM's proxy on 127.0.0.1:port serving each model of `upstreams` ({model: base URL
    http://host:port}) from its upstream, live and warmed up (see the module docstring for its
    settings). Its config and log go to log_dir. Stop it with child.stop()."""
    if not upstreams:
        raise ValueError("start_litellm_proxy: no model to serve")
    exe = ensure_venv()
    cfg = write_config(log_dir, dict(upstreams))
    cmd = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", str(workers)]  # fmt: skip
    t0 = time.monotonic()
    child = Child("litellm-proxy", cmd, log_dir, proxy_env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_port(port, child, timeout_s=120)
        wait_http(f"{base}/health/liveliness", child)
        for _ in range(4 * workers):  # new connection each: spreads over the workers
            for model in upstreams:
                check_answers(base, model)
    except BaseException:
        child.stop()
        raise
    log(f"LiteLLM proxy {LITELLM_VERSION} ready on {base} ({workers} worker(s)) "
        f"in {time.monotonic() - t0:.1f} s; log {child.log_path}")  # fmt: skip
    return child
