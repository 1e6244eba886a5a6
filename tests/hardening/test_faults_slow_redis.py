"""Fault injection, small (the full harness is bench/faults.py): concurrent clients on a gateway
whose Redis becomes slower than `store.timeout_s` in the middle of the load and then recovers.
Redis runs every settle it receives, but many replies arrive too late: the gateway accounts
them locally and replays them. Afterwards Redis must hold exactly the spend the clients were
told (0 double charges, none lost) and no hold may be left."""

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis

from gateway.budget.money import from_nano
from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.loopback import Relay
from tests.support.servers import GatewayServer, RedisServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

pytestmark = pytest.mark.redis
ADMIN = "admin-faults"


@pytest.mark.parametrize("allowance", ["5.00", "0.00002"])
def test_slow_redis_mid_load_charges_exactly_once_and_leaves_no_hold(
    allowance: str, redis_server: RedisServer, upstream: FakeOpenAI, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With a tiny fail-open allowance, requests are refused locally (503) after their hold may
    already have reached Redis: that hold must be given back too, not left until its TTL."""
    monkeypatch.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    monkeypatch.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    team = f"faults{time.monotonic_ns() % 10**9}"
    (tmp_path / "teams.yaml").write_text(f"teams: {{{team}: {{budgets: {{month: '100.00'}}}}}}")
    key = create_key(tmp_path, team)
    with Relay(redis_server.port) as proxy:
        settings = settings_for(
            upstream.url, tmp_path, redis_url=proxy.url, store={"timeout_s": 0.15},
            budget={"on_store_error": "fail_open", "reconcile_interval_s": 0.1,
                    "fail_open_allowance_usd": allowance},
        )  # fmt: skip
        body = {"model": "small-a", "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 8}  # fmt: skip
        auth = {"authorization": f"Bearer {key}"}
        with GatewayServer(settings) as gw, httpx.Client(base_url=gw.url, timeout=20) as c:

            def one(i: int) -> tuple[int, Decimal]:
                if i == 40:
                    proxy.delay_s = 0.3  # slower than the timeout: replies come too late
                if i == 120:
                    proxy.delay_s = 0.0
                r = c.post("/v1/chat/completions", json=body, headers=auth)
                cost = Decimal(r.headers.get("x-frugal-cost-usd", "0"))
                return r.status_code, cost

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(one, range(160)))
            deadline = time.monotonic() + 15
            admin = {"authorization": f"Bearer {ADMIN}"}
            while time.monotonic() < deadline:  # bounded wait for the reconciler
                status = c.get("/admin/budget/status", headers=admin).json()
                if not status["degraded"]:
                    break
                time.sleep(0.1)
            assert not status["degraded"], status
            assert status["store_failures"] > 0  # the fault did happen
    codes = [s for s, _ in results]
    if allowance == "5.00":
        assert set(codes) == {200}, codes  # fail_open: no 5xx
    else:
        assert set(codes) == {200, 503}, codes  # 503 only past the allowance (the fail mode)
    told = sum((cost for _, cost in results), Decimal(0))
    with redis.Redis(port=redis_server.port) as r:
        keys = list(r.scan_iter(match=f"frugal:{{t:{team}}}:bud:team:m*"))
        assert len(keys) == 1
        h = r.hgetall(keys[0])
    assert from_nano(int(h[b"spent"])) == told  # 0 double charges, nothing lost
    assert int(h[b"reserved"]) == 0  # 0 holds left
