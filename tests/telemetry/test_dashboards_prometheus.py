"""The dashboards against a real Prometheus: `frugal serve --workers 2` (sharing a real Redis)
serves known traffic, Debian's prometheus scrapes it every second, and every PromQL expression
in grafana/dashboards/*.json is evaluated through Prometheus' HTTP API. Each must return data;
where the traffic fixes the value (spend per team to the cent, savings by source, budgets left,
cache hit ratio, route mix) it must be that value. No panel can be empty because of a wrong
metric name: every metric a panel names must also be in the gateway's own /metrics."""

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import ROOT, RedisServer
from tests.telemetry.promserver import Prometheus
from tests.telemetry.support import ADMIN_KEY, UPSTREAM_KEY_ENV, chat, config, scrape, serve
from tests.telemetry.support import write_policies as policies_for

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
GRAFANA_VARS = {"$__range": "10m", "$__rate_interval": "10m", "$__interval": "10m",
                "$team": ".*", "${team}": ".*"}  # fmt: skip


@dataclass
class Traffic:
    responses: list[httpx.Response] = field(default_factory=list)

    def header_counts(self, name: str) -> Counter[str]:
        return Counter(r.headers[name] for r in self.responses if name in r.headers)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # rows


def expressions() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every panel."""
    out = []
    for path in DASHBOARDS:
        for p in panels(json.loads(path.read_text())):
            out += [(path.name, p["title"], t["expr"]) for t in p.get("targets", []) if "expr" in t]
    return out


def substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def send(url: str, keys: dict[str, str], phase: int) -> list[httpx.Response]:
    """One phase of known traffic; each phase has the same shape and fresh cache keys."""
    r, s, b = keys["research"], keys["support"], keys["broke"]
    out = [
        chat(url, r, "auto", content=f"Say hello{phase}"),  # small, cache miss
        chat(url, r, "auto", content=f"Say hello{phase}"),  # cache hit
        chat(url, r, "always-large", content=f"Say large{phase}"),  # large
        chat(url, r, "auto", content=f"Say stream{phase}", stream=True),  # small, streamed
        chat(url, r, "deadfirst", content=f"Say fallback{phase}"),  # dead fails, large answers
        chat(url, s, "small-a", content=f"Say one{phase}"),  # pinned small
        chat(url, s, "large-a", content=f"Say two{phase}"),  # pinned large
        chat(url, s, "dead", content=f"Say three{phase}"),  # pinned, upstream down: 502
        chat(url, b, "auto", content=f"Say hello{phase}"),  # refused: budget
    ]
    assert [x.status_code for x in out] == [200] * 7 + [502, 429]
    assert [x.headers["x-frugal-tier"] for x in out[:4]] == ["small", "small", "large", "small"]
    assert out[1].headers["x-frugal-cache"] == "hit"
    return out


@pytest.fixture(scope="module")
def stack(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Prometheus, Traffic, float]]:
    tmp = tmp_path_factory.mktemp("dashboards")
    url = redis_server.url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    keys = policies_for(tmp / "policies")
    cfg = config(fake_openai.url, policies_dir=str(tmp / "policies"), redis_url=url)
    (tmp / "frugal.yaml").write_text(yaml.safe_dump(cfg))
    env = {UPSTREAM_KEY_ENV: fake_openai.api_key or "", "FRUGAL_ADMIN_KEY": ADMIN_KEY,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}  # fmt: skip
    gateway, base = serve(tmp / "frugal.yaml", workers=2, env=env)
    prom = Prometheus(base.removeprefix("http://"), ADMIN_KEY)
    try:
        prom.wait_ready()
        prom.wait_scrapes(2)  # the counters' zeros are in before any traffic
        traffic = Traffic()
        for phase in (1, 2):
            traffic.responses += send(base, keys, phase)
            at = prom.wait_scrapes(2)
        yield base, prom, traffic, at
    finally:
        prom.stop()
        gateway.stop()


def by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


def value_of(prom: Prometheus, at: float, title: str, ref: int = 0) -> list[dict[str, Any]]:
    exprs = [e for _, t, e in expressions() if t == title]
    assert exprs, f"no panel titled {title!r}"
    return prom.query(substitute(exprs[ref]), at)


def test_every_dashboard_query_returns_data(
    stack: tuple[str, Prometheus, Traffic, float],
) -> None:
    _, prom, _, at = stack
    assert len(DASHBOARDS) == 4 and len(expressions()) >= 30
    empty = []
    for name, title, expr in expressions():
        result = prom.query(substitute(expr), at)
        values = [float(r["value"][1]) for r in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{name}: {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_metric_a_panel_names_is_exported(
    stack: tuple[str, Prometheus, Traffic, float],
) -> None:
    base, _, _, _ = stack
    exported = set(re.findall(r"^([a-z_:][a-z0-9_:]*)", scrape(base), re.M))
    named = set()
    for _, _, expr in expressions():
        named |= set(re.findall(r"\b((?:frugal|gen_ai)_[a-z0-9_]+)\s*[{\[]", expr))
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            named |= set(re.findall(r"label_values\((\w+)", var["definition"]))
    assert named and not named - exported, sorted(named - exported)


def test_money_panels_are_right_to_the_cent(
    stack: tuple[str, Prometheus, Traffic, float],
) -> None:
    _, prom, _, at = stack

    def one(title: str) -> float:
        (r,) = value_of(prom, at, title)
        return float(r["value"][1])

    spend_by_team = by(value_of(prom, at, "Spend by team"), "team")
    assert spend_by_team == pytest.approx(
        {("research",): 0.37, ("support",): 0.185, ("broke",): 0.0},
        abs=1e-9,  # to the cent
    )
    assert one("Spend") == pytest.approx(0.555, abs=1e-9)
    assert one("Savings from routing") == pytest.approx(0.35, abs=1e-9)
    assert one("Savings from the cache") == pytest.approx(0.18, abs=1e-9)
    assert one("Cost with everything on the large model") == pytest.approx(1.085, abs=1e-9)
    table = by(value_of(prom, at, "Spend and savings by team, model and tier"),
               "team", "model", "tier")  # fmt: skip
    assert table[("research", "large-a", "large")] == pytest.approx(0.36, abs=1e-9)
    assert table[("research", "small-a", "small")] == pytest.approx(0.01, abs=1e-9)


def test_budget_panels(stack: tuple[str, Prometheus, Traffic, float]) -> None:
    _, prom, _, at = stack
    left = by(value_of(prom, at, "Budget burn-down"), "team", "budget")
    assert left == pytest.approx({("research", "month"): 99.63, ("support", "month"): 49.815,
                                  ("support", "day"): 4.815, ("broke", "month"): 0.001},
                                 abs=1e-9)  # fmt: skip
    used = by(value_of(prom, at, "Budget used"), "team", "budget")
    assert used[("research", "month")] == pytest.approx(0.0037, abs=1e-9)
    runs_out = by(value_of(prom, at, "Projected run-out", ref=2), "team", "budget")
    assert at * 1000 < runs_out[("research", "month")] < math.inf
    assert runs_out[("support", "day")] < runs_out[("support", "month")] < math.inf
    assert runs_out[("broke", "month")] == math.inf  # no spend: never runs out


def test_routing_and_cache_panels(stack: tuple[str, Prometheus, Traffic, float]) -> None:
    _, prom, traffic, at = stack
    cache = traffic.header_counts("x-frugal-cache")
    hits = cache["hit"] + cache["semantic-hit"]
    ratio = float(value_of(prom, at, "Cache hit ratio")[0]["value"][1])
    assert hits == 2 and ratio == pytest.approx(hits / (hits + cache["miss"]))
    mix = by(value_of(prom, at, "Route mix by tier"), "tier")
    tiers = traffic.header_counts("x-frugal-tier")
    assert {k[0]: v for k, v in mix.items() if v} == {t: float(n) for t, n in tiers.items()}
    reasons = by(value_of(prom, at, "Route decisions by reason"), "reason")
    assert reasons[("pinned",)] == 6


def test_latency_and_error_panels(stack: tuple[str, Prometheus, Traffic, float]) -> None:
    _, prom, _, at = stack
    p99 = by(value_of(prom, at, "Latency p50 / p95 / p99 by tier", ref=2), "tier")
    assert set(p99) >= {("small",), ("large",)} and all(0 < v < 81.92 for v in p99.values())
    ttft = by(value_of(prom, at, "Time to first token p50 / p95 / p99 by tier"), "tier")
    assert set(ttft) == {("small",)} and 0 < ttft[("small",)] < 5
    errors = float(value_of(prom, at, "Error rate")[0]["value"][1])
    refusals = float(value_of(prom, at, "Refusal rate")[0]["value"][1])
    assert errors > 0 and refusals > 0
    upstream = by(value_of(prom, at, "Upstream errors by model"), "model", "error_type")
    assert {k for k, v in upstream.items() if v > 0} == {("dead", "UpstreamError")}
    assert upstream[("dead", "UpstreamError")] == pytest.approx(4 / 600)  # 4 in the 10m window


def test_dashboards_are_provisioned(stack: tuple[str, Prometheus, Traffic, float]) -> None:
    provisioning = ROOT / "grafana" / "provisioning"
    ds = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    uid = ds["datasources"][0]["uid"]
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        assert d["uid"] == path.stem
        for p in panels(d):
            assert p["datasource"]["uid"] == uid
            assert all(t["datasource"]["uid"] == uid for t in p["targets"])
    prov = yaml.safe_load((provisioning / "dashboards" / "frugal.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
