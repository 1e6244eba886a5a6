"""The whole label loop on the fake upstreams (issue 14, "Done means"): live traffic with
paired sampling (share 1.0) and a scripted judge produces labels in Redis; `labels export` +
`train --logs` produce an artifact that ranks this deployment's traffic better than the
shipped router; it runs in shadow, is promoted and rolled back without a restart, and every
request in flight during each swap succeeds."""

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.cli import main as frugal
from gateway.config import load_settings
from gateway.keys import create_key
from gateway.router import load_scorer
from gateway.router.artifact import DEFAULT_NAME
from gateway.store import open_store
from tests.learning import loop_support as s
from tests.support.fake_openai import WORDS, FakeOpenAI, Script
from tests.support.servers import GatewayServer, RedisServer

ADMIN = "admin-key-for-learning-tests"
KEY_ENV = "FRUGAL_TEST_LEARNING_UPSTREAM_KEY"
TRAIN = s.prompts(0, 60)  # 120 prompts through the gateway
HELD_OUT = s.prompts(60, 40)  # 80 prompts never seen by the training
JUDGE_FAILS = {TRAIN[5][0], TRAIN[8][0]}


@pytest.fixture(scope="module")
def loop(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    tmp = tmp_path_factory.mktemp("learning")
    policies = tmp / "policies"
    policies.mkdir()
    keys = {t: create_key(policies, t) for t in ("team-a", "team-b", "optout")}
    (policies / "teams.yaml").write_text("teams:\n  optout: {learning_opt_out: true}\n")
    cfg = s.config(fake_openai.url, redis_server.url, policies, KEY_ENV)
    cfg["routes"]["tight"] = {"tiers": ["small", "large"], "router": "heuristic",
                              "learning": {"sample_share": 1.0, "daily_budget_usd": "0.000001",
                                           "judge": "judge-a"}}  # fmt: skip
    cfg["routes"]["brief"] = {
        "tiers": ["small", "large"],
        "router": "heuristic",
        "learning": {"feedback_window_hours": 0.0015},  # 5.4 s
    }
    cfg["routes"]["cascading"] = {"tiers": ["small", "large"], "router": "heuristic",
                                  "threshold": 1.0, "cascade": {},
                                  "learning": {"sample_share": 0.0}}  # fmt: skip
    path = tmp / "frugal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    judge = s.Judge(dict(TRAIN + HELD_OUT), JUDGE_FAILS)
    fake_openai.reset()
    fake_openai.script = Script(reply=judge)
    with GatewayServer(load_settings(path)) as gw:
        yield {"url": gw.url, "keys": keys, "config": path, "tmp": tmp, "judge": judge, "gw": gw}
    asyncio.run(_forget(redis_server.url))
    fake_openai.reset()
    mp.undo()


async def _forget(url: str) -> None:
    """Leave no router state or labels in the session's Redis for other tests."""
    store = open_store(url)
    keys = await store.keys("frugal:router:state:*") + await store.keys("frugal:learn:*")
    if keys:
        await store.delete(*keys)
    await store.close()


def chat(url: str, key: str, prompt: str, model: str = "auto") -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": prompt}]},
                      timeout=30)  # fmt: skip


def admin(url: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", json=body, timeout=60,
                         headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip


def settled(url: str, want: int, timeout_s: float = 60) -> dict[str, Any]:
    """The learning status once `want` jobs are done (labelled or failed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = admin(url, "GET", "/admin/learning").json()
        done = sum(v for k, v in got["counts"].items() if k.startswith(("labelled_", "failed")))
        idle = got["queued"] == 0 and got["running"] == 0
        if (idle and done >= want) or time.monotonic() > deadline:
            return got  # type: ignore[no-any-return]
        time.sleep(0.1)


def in_flight(url: str, key: str, prompts: list[str], swap: Any) -> list[httpx.Response]:
    """Send `prompts` 8 at a time while `swap()` runs; every response."""
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(chat, url, key, p) for p in prompts]
        time.sleep(0.05)
        swap()
        return [f.result() for f in futures]


def test_live_labels_train_a_better_router_that_is_shadowed_promoted_and_rolled_back(
    loop: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    url, key, tmp = loop["url"], loop["keys"]["team-a"], loop["tmp"]
    # 1. live traffic; every answer names the router version that decided it
    shipped = None
    team_cost = 0.0
    for prompt, _ in TRAIN:
        r = chat(url, key, prompt)
        assert r.status_code == 200, r.text
        shipped = shipped or r.headers["x-frugal-router-version"]
        assert r.headers["x-frugal-router-version"] == shipped
        team_cost += float(r.headers["x-frugal-cost-usd"])
    assert shipped is not None and shipped.startswith(f"{DEFAULT_NAME}@")

    # 2. paired sampling at share 1.0: one label per request (judge failures recorded)
    status = settled(url, len(TRAIN))
    counts = status["counts"]
    assert counts.get("labelled_judge_failed") == len(JUDGE_FAILS)
    labelled = sum(v for k, v in counts.items() if k.startswith("labelled_"))
    assert labelled == len(TRAIN)
    assert loop["judge"].calls == 2 * len(TRAIN)  # both orders

    # 3. the learning calls are charged to `_learning`, never to the team
    spend = admin(url, "GET", "/admin/spend?team=_learning&period=day").json()["totals"]
    assert spend["requests"] == 3 * len(TRAIN)  # the other tier + the judge twice
    assert float(spend["cost_usd"]) > 0
    assert float(status["spent_today_usd"]["auto"]) == pytest.approx(float(spend["cost_usd"]))
    metrics = admin(url, "GET", "/metrics").text
    assert any('team="_learning"' in line and "judge-a" in line and not line.endswith(" 0.0")
               for line in metrics.splitlines() if line.startswith("frugal_cost"))  # fmt: skip
    team = admin(url, "GET", "/admin/spend?team=team-a&period=day").json()["totals"]
    assert team["requests"] == len(TRAIN)
    assert float(team["cost_usd"]) == pytest.approx(team_cost)

    # 4. export (user-log format) and train
    raw, logs = tmp / "labels-raw.jsonl", tmp / "labels.jsonl"
    cfg = str(loop["config"])
    assert frugal(["router", "labels", "export", "--config", cfg, "--output", str(raw),
                   "--raw", "--route", "auto"]) == 0  # fmt: skip
    records = [json.loads(line) for line in raw.read_text().splitlines()]
    assert len(records) == len(TRAIN)
    failed = [r for r in records if r["verdict"] == "judge_failed"]
    assert {r["messages"][0]["content"] for r in failed} == JUDGE_FAILS
    one = next(r for r in records if r["verdict"] != "judge_failed")
    assert one["answers"] == {"small": s.SMALL_SAYS, "large": s.LARGE_SAYS}
    assert set(one["cost"]) == {"small", "large", "judge"} and one["team"] == "team-a"
    assert one["small_acceptable"] == (truth_of(one) != "large")
    assert all(r["small_acceptable"] is None for r in failed)
    assert frugal(["router", "labels", "export", "--config", cfg, "--output", str(logs)]) == 0
    via_api = tmp / "labels-api.jsonl"  # the same through the admin API (an in-process store)
    assert frugal(["router", "labels", "export", "--gateway", url, "--route", "auto",
                   "--output", str(via_api)]) == 0  # fmt: skip
    assert via_api.read_text() == logs.read_text()
    lines = [json.loads(line) for line in logs.read_text().splitlines()]
    assert len(lines) == len(TRAIN) - len(JUDGE_FAILS)
    truth = dict(TRAIN)
    for line in lines:
        small_ok = line["acceptable"]["small"] >= 1.0
        assert small_ok == (truth[line["messages"][0]["content"]] != "large")
    art_dir = tmp / "artifacts"
    assert frugal(["router", "train", "--logs", str(logs), "--name", "e2e-learned",
                   "--out", str(art_dir), "--boot", "100"]) == 0  # fmt: skip
    artifact = str(art_dir / "e2e-learned.json")

    # 5. in-domain APGR on 80 held-out prompts of the same traffic: learned beats shipped
    prompts = [[{"role": "user", "content": p}] for p, _ in HELD_OUT]
    labels = [t for _, t in HELD_OUT]
    learned = load_scorer(artifact)
    ship = load_scorer("default")
    a_learned = s.apgr([learned.score(m) for m in prompts], labels)
    a_shipped = s.apgr([ship.score(m) for m in prompts], labels)
    print(f"held-out in-domain APGR: learned {a_learned:.3f}, shipped {a_shipped:.3f}")
    assert a_learned > a_shipped + 0.1 and a_learned > 0.6

    # 6. shadow first: promoting an artifact that has not run in shadow is refused
    refused = admin(url, "POST", "/admin/router/promote", {"route": "auto", "router": artifact})
    assert refused.status_code == 400 and "shadow" in refused.json()["error"]["message"]
    meta = json.loads(Path(artifact).read_text())
    threshold = float(meta["default_threshold"]["threshold"])
    shadowed = admin(url, "POST", "/admin/router/shadow",
                     {"route": "auto", "router": artifact, "threshold": threshold})  # fmt: skip
    assert shadowed.status_code == 200, shadowed.text
    for prompt, _ in HELD_OUT[:10]:
        r = chat(url, key, prompt)
        assert r.headers["x-frugal-router-version"] == shipped  # the shadow decides nothing
    state = admin(url, "GET", "/admin/router").json()["routes"]["auto"]
    assert state["shadow"]["decisions"] >= 10
    new_version = state["shadow"]["version"]
    assert new_version.startswith("e2e-learned@")

    # 7. promote (CLI -> admin API) with requests in flight: none fails, no restart
    batch = [p for p, _ in HELD_OUT[10:50]]

    def promote() -> None:
        assert frugal(["router", "promote", "--route", "auto", "--gateway", url]) == 0

    got = in_flight(url, key, batch, promote)
    assert [r.status_code for r in got] == [200] * len(batch)
    assert {r.headers["x-frugal-router-version"] for r in got} <= {shipped, new_version}
    r = chat(url, key, HELD_OUT[50][0])
    assert r.headers["x-frugal-router-version"] == new_version
    state = admin(url, "GET", "/admin/router").json()["routes"]["auto"]
    assert state["live"]["version"] == new_version and state["history"] == [shipped]
    assert state["live"]["threshold"] == pytest.approx(threshold)
    # the promoted router follows this deployment: religion to large, arithmetic to small
    tiers = {t: [chat(url, key, p).headers["x-frugal-tier"] for p, t2 in HELD_OUT[50:] if t2 == t]
             for t in ("large",)}  # fmt: skip
    math_tiers = [chat(url, key, p).headers["x-frugal-tier"] for p in
                  (q for q, _ in s.prompts(100, 10)[::2])]  # fmt: skip
    assert tiers["large"].count("large") > len(tiers["large"]) / 2
    assert math_tiers.count("small") > len(math_tiers) / 2

    # 8. rollback, again under load
    def rollback() -> None:
        assert frugal(["router", "rollback", "--route", "auto", "--gateway", url]) == 0

    got = in_flight(url, key, batch, rollback)
    assert [r.status_code for r in got] == [200] * len(batch)
    assert chat(url, key, "What is 2+2?").headers["x-frugal-router-version"] == shipped
    again = admin(url, "POST", "/admin/router/rollback", {"route": "auto"})
    assert again.status_code == 400  # nothing earlier to roll back to
    settled(url, 0)


def truth_of(record: dict[str, Any]) -> str:
    return dict(TRAIN)[record["messages"][0]["content"]]


def labels_of(url: str, route: str) -> list[dict[str, Any]]:
    text = admin(url, "GET", f"/admin/learning/labels?format=raw&route={route}").text
    return [json.loads(line) for line in text.splitlines()]


def feedback(url: str, key: str | None, body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=10)


def test_feedback_scores_only_the_teams_own_answers(loop: dict[str, Any]) -> None:
    url, keys = loop["url"], loop["keys"]
    r = chat(url, keys["team-a"], TRAIN[0][0])
    rid = r.headers["x-request-id"]
    settled(url, 0)
    assert feedback(url, keys["team-b"], {"request_id": rid, "thumbs": "down"}).status_code == 404
    assert feedback(url, None, {"request_id": rid, "thumbs": "down"}).status_code == 401
    for bad in ({"request_id": rid, "score": 2}, {"request_id": rid},
                {"request_id": rid, "score": 1, "thumbs": "up"}, [1]):  # fmt: skip
        got = feedback(url, keys["team-a"], bad)
        assert got.status_code == 400 and got.json()["error"]["type"] == "invalid_request_error"
    ok = feedback(url, keys["team-a"], {"request_id": rid, "thumbs": "down"})
    assert ok.status_code == 200 and ok.json()["score"] == 0.0
    label = next(x for x in labels_of(url, "auto")
                 if x["source"] == "feedback" and x["request_id"] == rid)  # fmt: skip
    assert label["team"] == "team-a" and label["feedback"]["thumbs"] == "down"
    assert label["messages"] == [{"role": "user", "content": TRAIN[0][0]}]
    assert label["served"]["tier"] == r.headers["x-frugal-tier"]


def test_an_opted_out_team_leaves_no_trace(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["optout"]
    r = chat(url, key, TRAIN[1][0])
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    settled(url, 0)
    assert feedback(url, key, {"request_id": rid, "score": 0.5}).status_code == 404
    assert all(x["request_id"] != rid for x in labels_of(url, "auto"))


def test_the_daily_learning_budget_stops_sampling(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    before = admin(url, "GET", "/admin/learning").json()["counts"].get("over_budget", 0)
    for prompt, _ in TRAIN[:3]:
        assert chat(url, key, prompt, model="tight").status_code == 200
    status = settled(url, 0)
    assert status["counts"]["over_budget"] == before + 3
    assert labels_of(url, "tight") == []
    assert float(status["spent_today_usd"]["tight"]) == 0


def test_a_reference_answer_reaches_the_judge(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    headers = {"authorization": f"Bearer {key}", "x-frugal-expected": "42%20%C3%A9"}
    body = {"model": "auto", "messages": [{"role": "user", "content": "6 x 7?"}]}
    r = httpx.post(f"{url}/v1/chat/completions", headers=headers, json=body, timeout=30)
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    settled(url, 0)
    label = next(x for x in labels_of(url, "auto") if x["request_id"] == rid)
    assert label["reference"] == "42 \u00e9"
    assert any("[Reference answer]\n42 \u00e9" in seen for seen in loop["judge"].seen)


def test_a_cascade_escalation_is_a_label(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    r = chat(url, key, "Name a colour. [empty]", model="cascading")
    assert r.status_code == 200 and "escalated" in r.headers["x-frugal-cascade"]
    settled(url, 0)
    (label,) = [
        x for x in labels_of(url, "cascading") if x["request_id"] == r.headers["x-request-id"]
    ]
    assert label["source"] == "cascade" and label["answers"] == {"small": "", "large": s.LARGE_SAYS}
    assert label["escalation"].startswith("cascade_escalated:empty")


def test_a_failing_job_is_logged_and_the_next_one_is_done(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    learning = loop["gw"]._server.config.app.app.state.rt.learning
    real = learning._paired
    calls = []

    async def fail_once(job: Any) -> None:
        calls.append(job.request_id)
        if len(calls) == 1:
            raise RuntimeError("scripted failure in a learning job")
        await real(job)

    before = dict(admin(url, "GET", "/admin/learning").json()["counts"])
    learning._paired = fail_once
    try:
        ids = [chat(url, key, p).headers["x-request-id"] for p, _ in TRAIN[2:4]]
        after = settled(url, 0)["counts"]
    finally:
        del learning._paired
    assert after["failed"] == before.get("failed", 0) + 1
    done = {x["request_id"] for x in labels_of(url, "auto")}
    assert ids[0] not in done and ids[1] in done


def test_a_streamed_answer_is_sampled_too(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": TRAIN[4][0]}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
        text = "".join(r.iter_text())
    assert "[DONE]" in text
    settled(url, 0)
    (label,) = [x for x in labels_of(url, "auto") if x["request_id"] == rid]
    served = r.headers["x-frugal-tier"]
    assert label["served"]["tier"] == served
    streamed = "".join(WORDS)
    assert label["answers"][served] == streamed
    assert label["verdict"] in ("tie", "large_better", "small_better")


def test_feedback_is_accepted_within_the_window_only(loop: dict[str, Any]) -> None:
    url, key = loop["url"], loop["keys"]["team-a"]
    first, second = (chat(url, key, p, model="brief") for p in ("one", "two"))
    settled(url, 0)
    ok = feedback(url, key, {"request_id": first.headers["x-request-id"], "score": 1})
    assert ok.status_code == 200
    time.sleep(6)
    late = feedback(url, key, {"request_id": second.headers["x-request-id"], "score": 1})
    assert late.status_code == 404
