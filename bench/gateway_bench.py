"""The gateway's added latency and throughput against a fast fake upstream, compared with calling
the upstream directly; and the hot-path HTTP client (aiohttp, what the gateway uses, vs httpx).

Every part is its own process, all on 127.0.0.1: two fake upstreams (fast, and 50 ms), the
gateway (`frugal serve --no-local`, one worker), a bench-only gateway whose upstream client is
httpx (bench/httpx_gateway.py), and the load generator (bench/loadgen.py) run once per scenario.
Each scenario runs --repeat times, interleaved; the run with the most req/s is reported.
Prints Markdown tables for the README; every child is stopped by its PID on exit or Ctrl-C.

    .venv/bin/python bench/gateway_bench.py [--quick] [--json out.json] [--router-latency]
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from procs import Child, free_port, python, wait_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = Path(os.environ.get("FRUGAL_SHARED_DIR", ROOT.parent / "shared"))
CHAT = "/v1/chat/completions"
CLIENTS = (1, 16, 64)
SLOW_MS = 50.0
DIRECT = "upstream direct"
PINNED = "gateway, pinned model"
HTTPX = "gateway, pinned, httpx client (bench-only)"


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:PORT
    model: str
    server: Child  # whose CPU time is charged to this target


@dataclass
class Scenario:
    target: Target
    stream: bool
    clients: int
    group: str  # "fast" or "slow"
    runs: list[dict[str, Any]] = field(default_factory=list)

    def key(self) -> tuple[str, bool, int, str]:
        return (self.target.name, self.stream, self.clients, self.group)

    def best(self) -> dict[str, Any]:
        return max(self.runs, key=lambda r: r["rps"])


@dataclass
class Stack:
    tmp: Path
    children: list[Child] = field(default_factory=list)
    targets: dict[str, Target] = field(default_factory=dict)

    def start(
        self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None
    ) -> Child:
        child = Child(name, cmd, self.tmp, env)
        self.children.append(child)
        wait_port(port, child)
        return child

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def write_config(tmp: Path, fast: int, slow: int, port: int) -> Path:
    def model(name: str, upstream: int, tier: str) -> dict[str, Any]:
        return {"provider": "openai", "model": name, "tier": tier,
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "price": {"input_per_mtok": "0.10", "output_per_mtok": "0.40"}}  # fmt: skip

    (tmp / "policies").mkdir(exist_ok=True)
    cfg: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"anonymous_team": "bench"},
        "policies_dir": str(tmp / "policies"),
        "models": {"fast-small": model("bench-small", fast, "small"),
                   "fast-large": model("bench-large", fast, "large"),
                   "slow-medium": model("bench-slow", slow, "medium")},
        "routes": {"auto": {"tiers": ["small", "large"], "router": "heuristic",
                            "threshold": 0.5}},
    }  # fmt: skip
    if (SHARED / "tiktoken").is_dir():
        cfg["tiktoken_cache_dir"] = str(SHARED / "tiktoken")
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def wait_healthy(base: str, child: Child, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited; log {child.log_path}:\n{child.tail()}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{child.name} not healthy after {timeout_s}s:\n{child.tail()}")


def gateway_env(log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRUGAL_")}
    env["FRUGAL_LOG_LEVEL"] = log_level
    return env


def start_stack(stack: Stack, args: argparse.Namespace) -> None:
    tmp = stack.tmp
    fast_port, slow_port, gw_port, hx_port = (free_port() for _ in range(4))
    up = [python(), str(BENCH / "fake_upstream.py"), "--port"]
    fast = stack.start("upstream-fast", [*up, str(fast_port)], fast_port)
    slow = stack.start("upstream-50ms", [*up, str(slow_port), "--delay-ms", str(SLOW_MS)],
                       slow_port)  # fmt: skip
    cfg = write_config(tmp, fast_port, slow_port, gw_port)
    env = gateway_env(args.log_level)
    frugal = str(Path(python()).parent / "frugal")
    gw_cmd = [frugal, "serve", "--config", str(cfg), "--no-local", "--port", str(gw_port),
              "--workers", "1"]  # fmt: skip
    gw = stack.start("gateway", gw_cmd, gw_port, env)
    add = stack.targets
    add["direct"] = Target(DIRECT, f"http://127.0.0.1:{fast_port}", "bench", fast)
    add["direct-slow"] = Target(DIRECT, f"http://127.0.0.1:{slow_port}", "bench", slow)
    add["pinned"] = Target(PINNED, f"http://127.0.0.1:{gw_port}", "fast-small", gw)
    add["auto"] = Target("gateway, `auto` route", f"http://127.0.0.1:{gw_port}", "auto", gw)
    add["slow"] = Target(PINNED, f"http://127.0.0.1:{gw_port}", "slow-medium", gw)
    wait_healthy(f"http://127.0.0.1:{gw_port}", gw)
    if not args.skip_httpx:
        hx_cmd = [python(), str(BENCH / "httpx_gateway.py"), "--config", str(cfg),
                  "--port", str(hx_port)]  # fmt: skip
        hx = stack.start("gateway-httpx", hx_cmd, hx_port, env)
        hx_base = f"http://127.0.0.1:{hx_port}"
        add["httpx"] = Target(HTTPX, hx_base, "fast-small", hx)
        add["httpx-slow"] = Target(HTTPX, hx_base, "slow-medium", hx)
        wait_healthy(hx_base, hx)


def scenarios(stack: Stack) -> list[Scenario]:
    t = stack.targets
    fast = [t[k] for k in ("direct", "pinned", "auto", "httpx") if k in t]
    slow = [t[k] for k in ("direct-slow", "slow", "httpx-slow") if k in t]
    out = [Scenario(x, s, c, "fast") for s in (False, True) for c in CLIENTS for x in fast]
    out += [Scenario(x, s, 64, "slow") for s in (False, True) for x in slow]
    return out


def run_one(sc: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python(), str(BENCH / "loadgen.py"), "--url", sc.target.base + CHAT,
           "--model", sc.target.model, "--concurrency", str(sc.clients),
           "--duration", str(args.duration), "--warmup", str(args.warmup)]  # fmt: skip
    if sc.stream:
        cmd.append("--stream")
    cpu0 = sc.target.server.cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 120,
                         check=True, start_new_session=True)  # fmt: skip
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    cpu = sc.target.server.cpu_s() - cpu0
    result["server_cpu_us_per_req"] = cpu * 1e6 / max(result["completed_total"], 1)
    return result


def run_all(items: list[Scenario], args: argparse.Namespace) -> None:
    total = len(items) * args.repeat
    done = 0
    for r in range(args.repeat):
        for sc in items:
            res = run_one(sc, args)
            sc.runs.append(res)
            done += 1
            mode = "stream" if sc.stream else "json"
            print(f"[{done}/{total}] run {r + 1} {sc.group} {mode} c={sc.clients} "
                  f"{sc.target.name}: {res['rps']:.0f} req/s p50 {fmt(res['p50_ms'])} ms "
                  f"errors {res['errors']}", file=sys.stderr, flush=True)  # fmt: skip


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def direct_of(sc: Scenario, items: list[Scenario]) -> Scenario | None:
    for o in items:
        same = o.group == sc.group and o.stream == sc.stream and o.clients == sc.clients
        if same and o.target.name == DIRECT:
            return o
    return None


def main_table(items: list[Scenario]) -> list[str]:
    lines = [
        "| mode | clients | target | p50 ms | p99 ms | req/s | first chunk p50 ms "
        "| added p50 ms | server CPU per request |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in items:
        b = sc.best()
        d = direct_of(sc, items)
        added = "" if d is None or d is sc else fmt(b["p50_ms"] - d.best()["p50_ms"])
        mode = ("stream" if sc.stream else "JSON") + (f", {SLOW_MS:g} ms upstream"
                                                      if sc.group == "slow" else "")  # fmt: skip
        lines.append(
            f"| {mode} | {sc.clients} | {sc.target.name} | {fmt(b['p50_ms'])} "
            f"| {fmt(b['p99_ms'])} | {b['rps']:,.0f} | {fmt(b['first_chunk_p50_ms'])} "
            f"| {added} | {b['server_cpu_us_per_req']:,.0f} µs |"
        )
    return lines


def find(items: list[Scenario], name: str, stream: bool, clients: int, group: str) -> Scenario:
    for sc in items:
        if sc.key() == (name, stream, clients, group):
            return sc
    raise KeyError((name, stream, clients, group))


def client_row(items: list[Scenario], label: str, name: str) -> str:
    one = find(items, name, False, 1, "fast").best()
    base = find(items, DIRECT, False, 1, "fast").best()
    cells = [label, f"+{one['p50_ms'] - base['p50_ms']:.2f} ms"]
    for stream in (False, True):
        for c in (16, 64):
            cells.append(f"{find(items, name, stream, c, 'fast').best()['rps']:,.0f}")
    for stream in (False, True):
        s = find(items, name, stream, 64, "slow").best()
        cells.append(f"{s['rps']:,.0f} req/s, p50 {s['p50_ms']:.0f} ms")
    return "| " + " | ".join(cells) + " |"


def client_table(items: list[Scenario]) -> list[str]:
    lines = [
        "| gateway's upstream client | added p50, 1 client | req/s 16 clients | "
        "req/s 64 clients | stream req/s 16 | stream req/s 64 | 64 clients, 50 ms upstream "
        "| same, streaming |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        client_row(items, "aiohttp (what the gateway uses)", PINNED),
    ]
    if HTTPX in {sc.target.name for sc in items}:
        lines.append(client_row(items, "httpx 0.28 `AsyncClient` (bench-only)", HTTPX))
    lines.append(client_row(items, "(upstream direct, no gateway)", DIRECT))
    return lines


def server_stack(gw: Child) -> str:
    maps = gw.maps()
    loop = "uvloop" if "uvloop" in maps else "asyncio"
    parser = "httptools" if "httptools" in maps else "h11"
    return f"uvicorn {loop} loop + {parser} parser"


def machine_note(args: argparse.Namespace, stack: Stack) -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    gw = next(c for c in stack.children if c.name == "gateway")
    cmd = " ".join(["bench/gateway_bench.py", *sys.argv[1:]])
    return [
        f"Machine: {os.cpu_count()} cores ({cpu}), shared with other work, so figures are noisy; "
        f"Python {platform.python_version()}. Everything on one box: the load generator, the "
        f"gateway and the fake upstream compete for the same {os.cpu_count()} cores.",
        f"Gateway: `frugal serve --no-local`, 1 worker, {server_stack(gw)}, "
        f"FRUGAL_LOG_LEVEL={args.log_level} (one log line per request and per upstream attempt).",
        f"Load: closed loop, aiohttp client on uvloop, keep-alive; {args.warmup:g} s warm-up then "
        f"{args.duration:g} s measured per row; best of {args.repeat} interleaved runs by req/s. "
        "p50/p99 = whole response; first chunk = first SSE event; added = gateway p50 - direct "
        "p50 at the same load; server CPU = CPU time of the answering process / requests.",
        f"Command: `.venv/bin/python {cmd}`",
    ]


def router_latency(args: argparse.Namespace) -> list[str]:
    script = BENCH / "router_latency.py"
    if not script.exists():
        return ["(bench/router_latency.py is not present: router scoring latency not measured)"]
    lines = []
    for router in ("heuristic", "default"):
        cmd = [python(), "bench/router_latency.py", "--n", str(args.router_n), "--router", router]
        shown = f"`{' '.join(cmd[1:])}`"
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                                 start_new_session=True)  # fmt: skip
        except subprocess.TimeoutExpired:
            lines.append(f"- {shown}: timed out")
            continue
        text = (out.stdout if out.returncode == 0 else out.stderr).strip().splitlines()
        verdict = "" if out.returncode == 0 else "failed: "
        lines.append(f"- {shown}: {verdict}{text[-1] if text else 'no output'}")
    return lines


def report(items: list[Scenario], args: argparse.Namespace, stack: Stack) -> str:
    out = ["### Gateway overhead against a fast fake upstream", ""]
    out += main_table(items)
    out += ["", "### Hot-path HTTP client", ""]
    out += client_table(items)
    out += ["", *machine_note(args, stack)]
    if args.router_latency:
        out += ["", "Router scoring latency (bench/router_latency.py, batch 1):"]
        out += router_latency(args)
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1.5 s per row, 1 run")
    p.add_argument("--duration", type=float, help="measured seconds per row (default 3)")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--repeat", type=int, help="runs per row, best reported (default 2)")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    p.add_argument("--skip-httpx", action="store_true", help="no httpx comparison")
    p.add_argument("--log-level", default="INFO", help="gateway FRUGAL_LOG_LEVEL (default INFO)")
    p.add_argument("--router-latency", action="store_true",
                   help="also run bench/router_latency.py (heuristic and learned)")  # fmt: skip
    p.add_argument("--router-n", type=int, default=200)
    args = p.parse_args()
    args.duration = args.duration or (1.5 if args.quick else 3.0)
    args.repeat = args.repeat or (1 if args.quick else 2)
    return args


def write_json(path: Path, items: list[Scenario], args: argparse.Namespace) -> None:
    rows = [{"target": sc.target.name, "model": sc.target.model, "stream": sc.stream,
             "clients": sc.clients, "group": sc.group, "runs": sc.runs, "best": sc.best()}
            for sc in items]  # fmt: skip
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    path.write_bytes(orjson.dumps({"args": meta, "rows": rows}, option=orjson.OPT_INDENT_2))


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="frugal-bench-"))
    stack = Stack(tmp)
    try:
        start_stack(stack, args)
        items = scenarios(stack)
        run_all(items, args)
        text = report(items, args, stack)
        print(text)
        if args.json:
            write_json(args.json, items, args)
        return 0
    except KeyboardInterrupt:
        print("interrupted; stopping every process", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError, subprocess.SubprocessError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        for c in stack.children:
            print(f"--- {c.name} log tail:\n{c.tail(1500)}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
