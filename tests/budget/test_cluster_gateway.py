"""The whole budget path on a real three-node Redis Cluster: every script's keys share the
team's hash tag, so admit, reserve and settle run on one slot; two teams land on their slots."""

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from redis.cluster import RedisCluster as SyncCluster

from gateway.budget import layout
from gateway.budget.money import from_nano
from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis_cluster import RedisCluster
from tests.support.servers import GatewayServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for


@pytest.mark.redis
def test_budgets_rate_limits_and_the_ledger_work_on_redis_cluster(
    redis_cluster: RedisCluster, upstream: FakeOpenAI, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    teams = ["alpha", "omega"]
    keys = {t: create_key(tmp_path, t) for t in teams}
    (tmp_path / "teams.yaml").write_text(
        "teams:\n" + "".join(
            f"  {t}: {{budgets: {{day: '1', month: '5'}}, limits: {{rpm: 100, tpm: 100000}}}}\n"
            for t in teams
        )
    )  # fmt: skip
    s = settings_for(upstream.url, tmp_path, redis_url=redis_cluster.url)
    costs: dict[str, Decimal] = dict.fromkeys(teams, Decimal(0))
    with GatewayServer(s) as gw, httpx.Client(base_url=gw.url, timeout=10) as c:
        for t in teams:
            for _ in range(3):
                r = c.post("/v1/chat/completions", headers={"authorization": f"Bearer {keys[t]}"},
                           json={"model": "small-a", "max_tokens": 20,
                                 "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
                assert r.status_code == 200, r.text
                assert "x-frugal-budget-remaining-usd" in r.headers
                costs[t] += Decimal(r.headers["x-frugal-cost-usd"])
    rc = SyncCluster.from_url(redis_cluster.url.replace("redis+cluster://", "redis://"))
    try:
        slots = {rc.keyslot(layout.reservations(t)) for t in teams}
        assert len(slots) == 2  # the two teams live on different slots
        for t in teams:
            month = [k for k in rc.scan_iter(match=f"*{t}}}:bud:team:m*", target_nodes="all")]
            assert len(month) == 1
            h = rc.hgetall(month[0])
            assert from_nano(int(h[b"spent"])) == costs[t] and int(h[b"reserved"]) == 0
    finally:
        rc.close()
