"""Redis unavailable: fail_open admits, accounts in process and reconciles into Redis when it
returns; fail_closed answers 503 with a clear message."""

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.budget import layout
from gateway.budget.money import from_nano
from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, RedisServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

ADMIN = "admin-outage"


def _outage(server: RedisServer) -> None:
    server.stop()
    server.process = None


def _gateway(fake: FakeOpenAI, tmp: Path, redis_url: str, mode: str) -> tuple[GatewayServer, str]:
    key = create_key(tmp, "ops")
    (tmp / "teams.yaml").write_text("teams: {ops: {budgets: {month: '1.00'}}}")
    s = settings_for(fake.url, tmp, redis_url=redis_url,
                     budget={"on_store_error": mode, "reconcile_interval_s": 0.1})  # fmt: skip
    return GatewayServer(s), key


def _chat(c: httpx.Client, key: str) -> httpx.Response:
    body = {"model": "small-a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    return c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


def _settled(port: int, spent: Decimal) -> None:
    """Wait (bounded) until the team's month budget in Redis shows `spent`."""
    r = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = r.keys("*bud:team:m*")
        if keys and from_nano(int(r.hget(keys[0], "spent") or 0)) == spent:
            break
        time.sleep(0.02)
    r.close()


@pytest.mark.redis
def test_fail_open_serves_during_the_outage_and_reconciles_after(
    own_redis: RedisServer, upstream: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    monkeypatch.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    gw, key = _gateway(upstream, tmp_path, own_redis.url, "fail_open")
    port = own_redis.port
    with gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        costs = [Decimal(_chat(c, key).headers["x-frugal-cost-usd"])]
        _settled(own_redis.port, costs[0])  # settles run after the answer: let it land first
        _outage(own_redis)
        for _ in range(3):
            r = _chat(c, key)
            assert r.status_code == 200, r.text
            costs.append(Decimal(r.headers["x-frugal-cost-usd"]))
        status = c.get("/admin/budget/status", headers={"authorization": f"Bearer {ADMIN}"})
        assert status.json()["store_failures"] >= 3 and status.json()["degraded"]
        ready = c.get("/readyz")  # still serving: degraded, not pulled from the load balancer
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded" and ready.json()["store"]["ok"] is False
        back = RedisServer(port=port).start()
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # bounded wait for the reconciler
                s = c.get("/admin/budget/status", headers={"authorization": f"Bearer {ADMIN}"})
                if not s.json()["degraded"]:
                    break
                time.sleep(0.05)
            assert not s.json()["degraded"]
            r = redis.Redis(port=port)
            month = [k for k in r.keys("*bud:team:m*")]
            assert len(month) == 1
            # the first request's spend was lost with the old Redis (no persistence): the three
            # answered during the outage are in the new one, exactly
            assert from_nano(int(r.hget(month[0], "spent") or 0)) == sum(costs[1:])
            ledger = r.hgetall(r.keys(f"*{layout.tag('ops')[7:]}*spend*")[0])
            assert sum(int(v) for f, v in ledger.items() if f.endswith(b"|requests")) == 3
        finally:
            back.stop()


@pytest.mark.redis
def test_fail_closed_answers_503_with_a_clear_message(
    own_redis: RedisServer, upstream: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    gw, key = _gateway(upstream, tmp_path, own_redis.url, "fail_closed")
    with gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        assert _chat(c, key).status_code == 200
        _outage(own_redis)
        r = _chat(c, key)
        assert r.status_code == 503
        err: dict[str, Any] = r.json()["error"]
        assert "budget store (Redis) is unavailable" in err["message"]
        assert "fail_closed" in err["message"]
        assert len(upstream.requests) == 1  # refused before any upstream call
        ready = c.get("/readyz")  # it refuses requests: not ready
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
