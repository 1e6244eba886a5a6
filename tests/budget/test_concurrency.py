"""The guarantee, against real Redis: 3 gateway processes, 64 concurrent clients, one team.
Settled spend never exceeds the budget by more than one request's worst case; no request is
charged twice or lost; the ledger reconciles with the upstream's usage to the nano-dollar."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml

from gateway.budget import layout
from gateway.budget.money import from_nano
from gateway.keys import create_key
from gateway.tokens import count_messages
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import Process, RedisServer, free_port, wait_port

PRICE_IN, PRICE_OUT = Decimal(100), Decimal(200)  # USD per million tokens: big, visible costs
BUDGET = Decimal("0.50")
MAX_TOKENS = 50
CLIENTS, PER_CLIENT, DEADLINE_S = 64, 40, 40.0
FIGURES: dict[str, Any] = {}


def _config(tmp: Path, upstream: str, redis_url: str, team: str) -> Path:
    policies = tmp / "policies"
    (tmp / "key").write_text(create_key(policies, team))
    (policies / "teams.yaml").write_text(yaml.safe_dump({"teams": {team: {"budgets": {
        "day": str(BUDGET * 4), "lifetime": str(BUDGET)}}}}))  # fmt: skip
    cfg = {
        "auth": {"anonymous_team": None}, "redis_url": redis_url, "policies_dir": str(policies),
        "models": {"paid": {"provider": "openai", "model": "fake-paid", "base_url": upstream,
                            "api_key_env": "FRUGAL_TEST_UPSTREAM_KEY", "max_output_tokens": 512,
                            "price": {"input_per_mtok": str(PRICE_IN),
                                      "output_per_mtok": str(PRICE_OUT)}}},
        "resilience": {"retries": 0},
    }  # fmt: skip
    path = tmp / "frugal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(cfg: Path, upstream_key: str) -> list[tuple[Process, str]]:
    env = {**os.environ, "FRUGAL_TEST_UPSTREAM_KEY": upstream_key, "FRUGAL_LOG_LEVEL": "WARNING"}
    out = []
    for _ in range(3):
        port = free_port()
        cmd = [sys.executable, "-m", "gateway.cli", "serve", "--no-local", "--config", str(cfg),
               "--port", str(port)]  # fmt: skip
        out.append((Process(cmd, env=env), f"http://127.0.0.1:{port}"))
    for proc, url in out:
        try:
            wait_port(int(url.rsplit(":", 1)[1]), 90)  # three start at once on shared cores
        except TimeoutError:
            log = proc.output()
            for p, _ in out:
                p.stop()
            raise RuntimeError(f"a replica did not start within 90 s: {log!r}") from None
    return out


async def _client(i: int, urls: list[str], key: str, stats: dict[str, int], end: float) -> None:
    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        for n in range(PER_CLIENT):
            if time.monotonic() > end:
                return
            words = " ".join(["hello"] * (1 + (i + n) % 7))  # varied prompt sizes
            body = {"model": "paid", "max_tokens": MAX_TOKENS,
                    "messages": [{"role": "user", "content": f"Say {words}"}]}  # fmt: skip
            async with s.post(f"{urls[(i + n) % len(urls)]}/v1/chat/completions", json=body) as r:
                data = await r.json()
                stats[str(r.status)] = stats.get(str(r.status), 0) + 1
                if r.status == 429:
                    assert data["error"]["type"] == "insufficient_quota"
                    return


def _upstream_cost(requests: list[dict[str, Any]]) -> Decimal:
    """What the upstream reported, priced: prompt = words + 3, completion = 10 (the fake's)."""
    total = Decimal(0)
    for body in requests:
        prompt = sum(len(str(m["content"]).split()) for m in body["messages"]) + 3
        total += (prompt * PRICE_IN + 10 * PRICE_OUT) / Decimal(1_000_000)
    return total


@pytest.mark.redis
def test_three_replicas_64_clients_one_budget(
    tmp_path: Path, redis_server: RedisServer, upstream: FakeOpenAI
) -> None:
    team = f"load{uuid.uuid4().hex[:8]}"
    upstream.script.delay_s = 0.02  # keep many requests in flight at once
    cfg = _config(tmp_path, upstream.url, redis_server.url, team)
    procs = _start(cfg, upstream.api_key or "")
    stats: dict[str, int] = {}
    try:
        urls, key = [u for _, u in procs], (tmp_path / "key").read_text()
        end = time.monotonic() + DEADLINE_S

        async def load() -> None:
            await asyncio.gather(*[_client(i, urls, key, stats, end) for i in range(CLIENTS)])

        asyncio.run(load())
    finally:
        for p, _ in procs:
            p.stop()
    r = redis.Redis.from_url(redis_server.url)
    life = r.hgetall(layout.budget(team, None, "life"))
    ledger: dict[bytes, bytes] = {}
    for k in r.scan_iter(
        match=f"{layout.tag(team)}:spend:*".replace("{", "\\{").replace("}", "\\}")
    ):
        ledger.update(r.hgetall(k))
    spent = from_nano(int(life[b"spent"]))
    longest = [{"role": "user", "content": "Say " + " ".join(["hello"] * 7)}]
    worst = (count_messages(longest) * PRICE_IN + MAX_TOKENS * PRICE_OUT) / Decimal(1_000_000)
    ledger_requests = sum(int(v) for f, v in ledger.items() if f.endswith(b"|requests"))
    ledger_cost = from_nano(sum(int(v) for f, v in ledger.items() if f.endswith(b"|cost_nano")))
    FIGURES.update(
        requests=sum(stats.values()), ok=stats.get("200", 0), refused=stats.get("429", 0),
        budget=BUDGET, settled=spent, worst_case=worst, overshoot=spent - BUDGET,
        upstream_calls=len(upstream.requests), ledger_cost=ledger_cost,
    )  # fmt: skip
    print(f"\nconcurrency figures: {FIGURES}")
    assert set(stats) <= {"200", "429"} and stats.get("429", 0) > 0, stats
    assert int(life[b"reserved"]) == 0  # every hold was settled
    assert spent <= BUDGET + worst  # (by construction it stays within the budget itself)
    assert ledger_requests == stats["200"] == len(upstream.requests)  # none lost, none twice
    assert spent == ledger_cost == _upstream_cost(upstream.requests)  # to the nano-dollar
    cli = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "spend", "--config", str(cfg), "--team", team,
         "--period", "day", "--csv"], capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = cli.stdout.splitlines()[1:]
    assert sum(Decimal(line.split(",")[8]) for line in rows) == ledger_cost
