"""Budgets through the gateway (in-process store, fake upstream): a team over its soft
threshold is visibly downgraded, a team over its hard limit gets the documented 429, a cheaper
model is preferred to a refusal, failures release, cancelled streams are charged."""

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

ADMIN = "admin-secret-for-tests"
POLICY = """
teams:
  soft:
    budgets: {day: "0.0003"}
    soft: {at: 0.5, actions: [force_small_tier]}
  hard:
    budgets: {day: "0.0001"}
  cheaper:
    budgets: {day: "0.00003"}
  free:
    budgets: {day: "0.00001"}
    hard: {action: free_models_only}
  limited:
    limits: {rpm: 2}
  stream:
    budgets: {month: "1.00"}
  denied:
    allow: {models: [small-a], routes: [auto]}
  embed:
    limits: {rpm: 1}
  both:
    budgets: {day: "1.00"}
    limits: {rpm: 1}
"""
TEAMS = ["soft", "hard", "cheaper", "free", "limited", "stream", "denied", "embed", "alerting",
         "cached", "both", "fallback"]  # fmt: skip
MSG = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gw(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    policies = tmp_path_factory.mktemp("policies")
    keys = {t: create_key(policies, t) for t in TEAMS}
    (policies / "teams.yaml").write_text(POLICY)
    hook = fake_openai.url.replace("/v1", "/hook")  # answers 404: still delivered, once
    (policies / "alerts.yaml").write_text(
        f"teams: {{alerting: {{budgets: {{day: '0.001'}}, soft: {{at: 0.1, actions: [alert], "
        f"webhook: '{hook}'}}}}}}"
    )
    settings = settings_for(fake_openai.url, policies)
    models = dict(settings.models)
    models["free-a"] = models["small-a"].model_copy(update={"price": models["dead"].price})
    settings = settings.model_copy(update={"models": models})
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        yield c, keys, policies
    mp.undo()


def chat(gw: Any, team: str, model: str, **extra: Any) -> httpx.Response:
    c, keys, _ = gw
    body = {"model": model, "messages": MSG, "max_tokens": 10, **extra}
    return c.post("/v1/chat/completions", json=body,
                  headers={"authorization": f"Bearer {keys[team]}"})  # fmt: skip


def admin(gw: Any, path: str) -> httpx.Response:
    return gw[0].get(path, headers={"authorization": f"Bearer {ADMIN}"})


def test_over_the_soft_threshold_the_team_is_visibly_downgraded(
    gw: Any, upstream: FakeOpenAI
) -> None:
    for _ in range(2):  # 2 x $0.00009 on the large model: 60% of $0.0003
        r = chat(gw, "soft", "always-large")
        assert r.status_code == 200 and r.headers["x-frugal-model"] == "large-a"
    r = chat(gw, "soft", "always-large")
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "small-a" and r.headers["x-frugal-tier"] == "small"
    reason = r.headers["x-frugal-route-reason"]
    assert "budget: team.day 60% spent (soft limit 50%), small tier forced; downgraded" in reason
    assert Decimal(r.headers["x-frugal-budget-remaining-usd"]) == Decimal("0.00012") - Decimal(
        r.headers["x-frugal-cost-usd"]
    )


def test_over_the_hard_limit_the_team_gets_the_documented_429(
    gw: Any, upstream: FakeOpenAI
) -> None:
    assert chat(gw, "hard", "large-a").status_code == 200  # $0.00009 of $0.0001
    r = chat(gw, "hard", "large-a")
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["type"] == "insufficient_quota" and err["code"] == "insufficient_quota"
    msg = err["message"]
    assert "the day budget of team 'hard' ($0.0001) has $0.00001 left" in msg
    assert "worst-case cost of $0.000096" in msg and "it resets at " in msg
    assert r.headers["x-frugal-budget"] == "team.day"
    assert r.headers["x-frugal-budget-remaining-usd"] == "0.00001000"
    assert "x-frugal-budget-resets-at" in r.headers


def test_a_cheaper_model_is_preferred_to_a_refusal(gw: Any, upstream: FakeOpenAI) -> None:
    r = chat(gw, "cheaper", "always-large")  # the large worst case ($0.000096) cannot fit
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-budget-downgrade"] == "true"
    assert "budget: dropped large-a" in r.headers["x-frugal-route-reason"]


def test_an_exhausted_free_models_only_team_keeps_its_0_dollar_models(
    gw: Any, upstream: FakeOpenAI
) -> None:
    assert chat(gw, "free", "large-a").status_code == 429  # worst case above $0.00001
    for _ in range(5):  # ~$0.0000025 each: exhaust the $0.00001
        if chat(gw, "free", "small-a").status_code == 429:
            break
    assert chat(gw, "free", "small-a").status_code == 429
    r = chat(gw, "free", "free-a")
    assert r.status_code == 200 and Decimal(r.headers["x-frugal-cost-usd"]) == 0


def test_rate_limits_answer_429_with_retry_after(gw: Any, upstream: FakeOpenAI) -> None:
    codes = [chat(gw, "limited", "small-a").status_code for _ in range(3)]
    if codes != [200, 200, 429]:  # the minute turned between two requests: once more
        codes = [chat(gw, "limited", "small-a").status_code for _ in range(3)]
    assert codes[-1] == 429
    r = chat(gw, "limited", "small-a")
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and "retry-after" in r.headers


def test_a_rate_limited_request_checked_with_its_hold_gives_the_hold_back(
    gw: Any, upstream: FakeOpenAI
) -> None:
    # A pinned model and a policy without soft actions: the rate-limit check and the budget
    # hold go to the store together; the refused request must not keep its hold.
    codes = [chat(gw, "both", "large-a").status_code for _ in range(2)]
    if codes != [200, 429]:  # the minute turned between the two: once more
        codes = [chat(gw, "both", "large-a").status_code for _ in range(2)]
    assert codes[-1] == 429
    deadline = time.monotonic() + 5
    while True:
        budgets = admin(gw, "/admin/budgets?team=both").json()["budgets"]
        if Decimal(budgets[0]["reserved_usd"]) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert Decimal(budgets[0]["reserved_usd"]) == 0
    assert Decimal(budgets[0]["spent_usd"]) > 0


def test_policy_allow_lists_are_enforced(gw: Any, upstream: FakeOpenAI) -> None:
    assert chat(gw, "denied", "large-a").status_code == 403
    assert chat(gw, "denied", "always-large").status_code == 403
    r = chat(gw, "denied", "auto")
    assert r.status_code == 200 and r.headers["x-frugal-model"] == "small-a"


def wait_spend(gw: Any, team: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = admin(gw, f"/admin/spend?team={team}&period=month").json()
        if body["totals"]["requests"] >= requests or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_a_failed_call_releases_and_a_cancelled_stream_is_charged(
    gw: Any, upstream: FakeOpenAI
) -> None:
    upstream.script.fail_next, upstream.script.fail_status = 10, 500
    assert chat(gw, "stream", "small-a").status_code == 502
    upstream.reset()
    upstream.script.chunk_delay_s = 0.05
    c, keys, _ = gw
    body = {"model": "large-a", "messages": MSG, "stream": True}
    with c.stream("POST", "/v1/chat/completions", json=body,
                  headers={"authorization": f"Bearer {keys['stream']}"}) as r:  # fmt: skip
        lines = r.iter_lines()
        got = [next(lines) for _ in range(6)]  # a few chunks, then hang up
    assert any("Frugal" in x for x in got)
    spend = wait_spend(gw, "stream", 1)
    assert spend["totals"]["requests"] == 1  # the failed call is not in the ledger
    row = spend["rows"][0]
    assert 0 < row["completion_tokens"] < 10 and row["prompt_tokens"] > 0
    assert Decimal(row["cost_usd"]) > 0
    budgets = admin(gw, "/admin/budgets?team=stream").json()["budgets"]
    assert Decimal(budgets[0]["reserved_usd"]) == 0  # nothing stays held
    assert budgets[0]["spent_usd"] == row["cost_usd"]


def test_the_admin_api_needs_its_key_and_shows_key_ids_never_keys(
    gw: Any, upstream: FakeOpenAI
) -> None:
    c, keys, _ = gw
    assert c.get("/admin/spend?team=soft").status_code == 401
    r = c.get("/admin/spend?team=soft", headers={"authorization": f"Bearer {keys['soft']}"})
    assert r.status_code == 401
    csv = admin(gw, "/admin/spend?team=hard&period=day&format=csv").text
    assert csv.startswith("team,day,key_id,model,tier,requests")
    assert keys["hard"].split("_")[1] in csv and keys["hard"] not in csv
    status = admin(gw, "/admin/budget/status").json()
    assert status["store"] == "memory" and "soft" in status["teams"]


def test_frugal_spend_reads_the_admin_api_as_csv(
    gw: Any, upstream: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    assert chat(gw, "stream", "small-a").status_code == 200
    url = str(gw[0].base_url).rstrip("/")
    assert main(["spend", "--team", "stream", "--period", "month", "--csv", "--url", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("team,day,key_id,model,tier,requests")
    assert any(",small-a,small,1," in line for line in out[1:])


def test_policies_reload_without_a_restart_and_an_invalid_file_is_refused(
    gw: Any, upstream: FakeOpenAI
) -> None:
    c, _, policies = gw
    auth = {"authorization": f"Bearer {ADMIN}"}
    assert chat(gw, "denied", "large-a").status_code == 403
    (policies / "teams.yaml").write_text(POLICY.replace("models: [small-a]", "models: [large-a]"))
    assert c.post("/admin/policies/reload", headers=auth).json()["reloaded"] is True
    assert chat(gw, "denied", "large-a").status_code == 200
    (policies / "teams.yaml").write_text(POLICY + "\n    surprise: 1\n")
    assert c.post("/admin/policies/reload", headers=auth).json()["reloaded"] is False
    assert chat(gw, "denied", "large-a").status_code == 200  # the previous policies stay
    (policies / "teams.yaml").write_text(POLICY)
    assert c.post("/admin/policies/reload", headers=auth).json()["reloaded"] is True


def test_embeddings_are_limited_and_in_the_spend_ledger(gw: Any, upstream: FakeOpenAI) -> None:
    c, keys, _ = gw
    auth = {"authorization": f"Bearer {keys['embed']}"}
    codes = [c.post("/v1/embeddings", json={"model": "embed-a", "input": "a b c"},
                    headers=auth).status_code for _ in range(2)]  # fmt: skip
    assert codes == [200, 429] or codes == [200, 200]  # [200, 200]: the minute turned
    rows = wait_spend(gw, "embed", 1)["rows"]
    assert rows[0]["model"] == "embed-a" and rows[0]["prompt_tokens"] == 3


def test_the_soft_threshold_webhook_is_called_once_per_period(
    gw: Any, upstream: FakeOpenAI
) -> None:
    for _ in range(4):  # $0.00009 each on the large model: 9%, then 18%, 27%, 36% of $0.001
        assert chat(gw, "alerting", "large-a").status_code == 200
    deadline = time.monotonic() + 10
    while admin(gw, "/admin/budget/status").json()["alerts_sent"] < 1:
        assert time.monotonic() < deadline, "no alert sent"
        time.sleep(0.05)
    assert admin(gw, "/admin/budget/status").json()["alerts_sent"] == 1


def test_a_cache_hit_is_free_and_its_savings_are_in_the_ledger(
    gw: Any, upstream: FakeOpenAI
) -> None:
    first = chat(gw, "cached", "small-a", temperature=0)
    hit = chat(gw, "cached", "small-a", temperature=0)
    assert first.headers["x-frugal-cache"] == "miss" and hit.headers["x-frugal-cache"] == "hit"
    assert len(upstream.requests) == 1
    rows = wait_spend(gw, "cached", 2)["rows"]
    assert sum(r["requests"] for r in rows) == 2
    assert sum(Decimal(r["cost_usd"]) for r in rows) == Decimal(first.headers["x-frugal-cost-usd"])
    # A pinned miss saves nothing; the hit saves what the miss cost.
    saved = sum(Decimal(r["savings_usd"]) for r in rows)
    assert saved == Decimal(first.headers["x-frugal-cost-usd"]) > 0


def test_the_ledger_counts_a_fallback_under_the_tier_that_answered(
    gw: Any, upstream: FakeOpenAI
) -> None:
    upstream.script.context_windows = {"fake-small": 1}  # the small tier's models refuse
    r = chat(gw, "fallback", "cascading")
    assert r.status_code == 200, r.text
    assert (r.headers["x-frugal-tier"], r.headers["x-frugal-model"]) == ("small", "large-a")
    rows = wait_spend(gw, "fallback", 1)["rows"]
    assert [(row["model"], row["tier"]) for row in rows] == [("large-a", "large")]
