"""The bridged APIs go through the one pipeline: a team's budget refuses them (in each API's
error shape) and counts their spend, and a cascading route escalates them."""

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.keys import create_key
from tests.apis.conftest import ToolStreamingFake
from tests.support.servers import GatewayServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

ADMIN = "admin-secret-for-apis-tests"
POLICY = """
teams:
  anth: {budgets: {day: "0.0001"}}
  resp: {budgets: {day: "0.0001"}}
  spender: {budgets: {month: "1.00"}}
"""


@pytest.fixture(scope="module")
def gw(tool_fake: ToolStreamingFake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, tool_fake.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    policies = tmp_path_factory.mktemp("policies")
    keys = {t: create_key(policies, t) for t in ("anth", "resp", "spender", "free")}
    (policies / "teams.yaml").write_text(POLICY)
    try:
        settings = settings_for(tool_fake.url, policies)
        with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=10) as c:
            yield c, keys
    finally:
        mp.undo()


def messages(gw: Any, team: str, model: str) -> httpx.Response:
    c, keys = gw
    body = {
        "model": model,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    return c.post("/v1/messages", json=body, headers={"x-api-key": keys[team]})


def responses(gw: Any, team: str, model: str) -> httpx.Response:
    c, keys = gw
    body = {"model": model, "max_output_tokens": 10, "input": "Say hello", "store": False}
    return c.post("/v1/responses", json=body, headers={"authorization": f"Bearer {keys[team]}"})


def until_refused(send: Any) -> httpx.Response:
    for _ in range(5):
        r = send()
        if r.status_code != 200:
            return r
    raise AssertionError("the budget never refused")


def test_a_spent_budget_refuses_each_api_in_its_shape(gw: Any, fake: ToolStreamingFake) -> None:
    r = until_refused(lambda: messages(gw, "anth", "large-a"))
    assert r.status_code == 429
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "billing_error"
    assert "day budget of team 'anth'" in r.json()["error"]["message"]
    assert r.headers["x-frugal-budget"] == "team.day"
    r = until_refused(lambda: responses(gw, "resp", "large-a"))
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"


def test_bridged_spend_is_counted(gw: Any, fake: ToolStreamingFake) -> None:
    c, _ = gw
    a, b = messages(gw, "spender", "small-a"), responses(gw, "spender", "small-a")
    assert a.status_code == b.status_code == 200
    expected = Decimal(a.headers["x-frugal-cost-usd"]) + Decimal(b.headers["x-frugal-cost-usd"])
    assert expected > 0
    spent = Decimal(0)
    for _ in range(50):  # settles are written shortly after the answer
        rows = c.get("/admin/budgets?team=spender", headers={"authorization": f"Bearer {ADMIN}"})
        spent = Decimal(rows.json()["budgets"][0]["spent_usd"])
        if spent >= expected:
            break
        time.sleep(0.05)
    assert spent == expected


def test_a_cascading_route_escalates_a_bridged_request(gw: Any, fake: ToolStreamingFake) -> None:
    fake.script.completion_tokens = 0  # the small model answers nothing: escalate
    r = messages(gw, "free", "cascading")
    assert r.status_code == 200
    assert r.headers["x-frugal-cascade"] == "escalated from small-a: empty"
    assert r.headers["x-frugal-model"] == "large-a"
    assert [q["model"] for q in fake.requests] == ["fake-small", "fake-large"]
