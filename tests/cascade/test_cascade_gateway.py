"""A cascade route with the learned verifier, end to end through the gateway on the fake hosted
upstream (which returns log-probabilities in OpenAI's wire format when asked): the small answer
passes or is escalated, both calls are costed, the reason header says why, log-probabilities
the client did not ask for are hidden, a team whose budget says small only is not escalated,
and a checked stream is replayed or replaced."""

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.keys import create_key
from tests.cascade.conftest import write_verifier
from tests.conftest import model_cfg
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer

KEY_ENV = "FRUGAL_TEST_CASCADE_UPSTREAM_KEY"
# P(large better) = sigmoid(5 - 10 * agree): two samples that agree pass (0.007)
AGREEMENT = (("agreement",), ("agree_present", "agree"), (0.0, -10.0), 5.0)
MSG = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many now?"}]
POLICY = """
teams:
  open: {}
  tight:
    budgets: {day: "0.10"}
    soft: {at: 0.05, actions: [force_small_tier]}
"""


def _settings(url: str, policies: Path, verifier: Path, agree: Path) -> Settings:
    def model(upstream: str, tier: str, out: str) -> dict[str, Any]:
        return model_cfg(url, upstream, tier=tier, api_key_env=KEY_ENV,
                         price={"input_per_mtok": "0.10", "output_per_mtok": out})  # fmt: skip

    cascade = {"verifier": str(verifier), "threshold": 0.5}
    return Settings(
        models={
            "small-a": model("fake-small", "small", "0.20"),
            "large-a": model("fake-large", "large", "8.00"),
            "pricey": model("fake-pricey", "medium", "1000"),
        },
        routes={
            "verified": {"tiers": ["small", "large"], "threshold": 1.0, "cascade": cascade},
            "checked-stream": {
                "tiers": ["small", "large"],
                "threshold": 1.0,
                "cascade": {**cascade, "stream": "check"},
            },
            "unchecked-stream": {"tiers": ["small", "large"], "threshold": 1.0, "cascade": cascade},
            "hybrid": {"tiers": ["small", "large"], "threshold": 0.0, "cascade": cascade},
            "agreeing": {
                "tiers": ["small", "large"],
                "threshold": 1.0,
                "cascade": {"verifier": str(agree), "samples": 2},
            },
        },
        policies_dir=policies,
    )


@pytest.fixture(scope="module")
def gw(
    fake_openai: FakeOpenAI, verifier_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    policies = tmp_path_factory.mktemp("policies")
    (policies / "teams.yaml").write_text(POLICY)
    keys = {t: create_key(policies, t) for t in ("open", "tight")}
    agree = write_verifier(tmp_path_factory.mktemp("agree"), "verifier-agree", AGREEMENT)
    settings = _settings(fake_openai.url, policies, verifier_file, agree)
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=20) as c:
        yield c, keys
    mp.undo()


def _post(gw: tuple[httpx.Client, dict[str, str]], model: str, team: str = "open",
          **extra: Any) -> httpx.Response:  # fmt: skip
    client, keys = gw
    body = {"model": model, "messages": MSG, "max_tokens": 20, **extra}
    return client.post("/v1/chat/completions", json=body,
                       headers={"authorization": f"Bearer {keys[team]}"})  # fmt: skip


def _small_says(upstream: FakeOpenAI, text: str) -> None:
    upstream.script.reply = lambda body: text if body["model"] == "fake-small" else "Seven."


def test_a_confident_small_answer_passes_and_logprobs_stay_hidden(
    gw: Any, upstream: FakeOpenAI
) -> None:
    _small_says(upstream, "3 + 4 = 7. The answer is 7.")
    r = _post(gw, "verified")
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"].startswith("passed verifier verifier-test 0.1")
    sent = upstream.requests[-1]
    assert sent["model"] == "fake-small" and sent["logprobs"] is True
    assert sent["top_logprobs"] == 5  # the entropy signal reads the alternatives
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "3 + 4 = 7. The answer is 7."
    assert choice["logprobs"] is None  # the client did not ask for them


def test_the_client_keeps_logprobs_it_asked_for(gw: Any, upstream: FakeOpenAI) -> None:
    _small_says(upstream, "The answer is 7.")
    r = _post(gw, "verified", logprobs=True)
    assert r.status_code == 200, r.text
    tokens = r.json()["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == "The answer is 7."


def test_an_unsure_small_answer_is_escalated_and_both_calls_are_costed(
    gw: Any, upstream: FakeOpenAI
) -> None:
    _small_says(upstream, "3 + 4 = 7. The answer is 7.")
    small_only = Decimal(_post(gw, "small-a").headers["x-frugal-cost-usd"])
    large_only = Decimal(_post(gw, "large-a").headers["x-frugal-cost-usd"])
    upstream.requests.clear()
    upstream.script.logprob = -2.0  # every token unsure
    r = _post(gw, "verified")
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "large-a"
    assert r.headers["x-frugal-cascade"].startswith(
        "escalated from small-a: verifier verifier-test 0.99"
    )
    assert "cascade: small answer verifier verifier-test" in r.headers["x-frugal-route-reason"]
    assert Decimal(r.headers["x-frugal-cost-usd"]) == small_only + large_only
    assert [q["model"] for q in upstream.requests] == ["fake-small", "fake-large"]
    assert "logprobs" not in upstream.requests[1]  # only the checked call asks for them
    assert r.json()["choices"][0]["message"]["content"] == "Seven."


def test_a_wrong_arithmetic_step_is_escalated(gw: Any, upstream: FakeOpenAI) -> None:
    _small_says(upstream, "3 + 4 = 8. The answer is 8.")
    r = _post(gw, "verified")
    assert r.headers["x-frugal-model"] == "large-a"
    assert "verifier verifier-test" in r.headers["x-frugal-cascade"]


def test_no_escalation_when_the_budget_says_small_only(gw: Any, upstream: FakeOpenAI) -> None:
    spend = _post(gw, "pricey", team="tight")  # ~$0.01 of $0.10: past the 5% soft limit
    assert spend.status_code == 200, spend.text
    upstream.script.logprob = -2.0
    _small_says(upstream, "The answer is 7.")
    r = _post(gw, "verified", team="tight")
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"].startswith("not escalated (team.day")
    assert "small tier forced" in r.headers["x-frugal-route-reason"]


def _stream(gw: Any, model: str) -> tuple[httpx.Response, str, list[dict[str, Any]]]:
    client, keys = gw
    body = {"model": model, "messages": MSG, "max_tokens": 20, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=body,
                       headers={"authorization": f"Bearer {keys['open']}"}) as r:  # fmt: skip
        events = [json.loads(line[6:]) for line in r.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    return r, text, events


def test_a_checked_stream_replays_the_passing_small_answer(gw: Any, upstream: FakeOpenAI) -> None:
    _small_says(upstream, "3 + 4 = 7. The answer is 7.")
    r, text, events = _stream(gw, "checked-stream")
    assert r.status_code == 200
    assert text == "3 + 4 = 7. The answer is 7."
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"].startswith("passed verifier")
    assert "stream" not in upstream.requests[-1]  # generated whole, then checked
    assert events[-1]["usage"]["completion_tokens"] > 0


def test_a_checked_stream_is_replaced_by_the_large_stream(gw: Any, upstream: FakeOpenAI) -> None:
    _small_says(upstream, "3 + 4 = 8. The answer is 8.")
    r, text, _ = _stream(gw, "checked-stream")
    assert r.status_code == 200
    assert r.headers["x-frugal-model"] == "large-a"
    assert r.headers["x-frugal-cascade"].startswith("escalated from small-a: verifier")
    assert text == "Frugal routes each prompt to the cheapest good model."
    assert [q["model"] for q in upstream.requests] == ["fake-small", "fake-large"]
    assert upstream.requests[1]["stream"] is True


def test_streams_bypass_the_check_by_default(gw: Any, upstream: FakeOpenAI) -> None:
    upstream.script.logprob = -2.0
    r, text, _ = _stream(gw, "unchecked-stream")
    assert r.headers["x-frugal-model"] == "small-a" and "x-frugal-cascade" not in r.headers
    assert text and "logprobs" not in upstream.requests[-1]


def test_the_hybrid_sends_sure_hard_prompts_straight_to_large(
    gw: Any, upstream: FakeOpenAI
) -> None:
    r = _post(gw, "hybrid")  # the route's own threshold 0: every prompt is "sure hard"
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "large-a" and "x-frugal-cascade" not in r.headers
    assert [q["model"] for q in upstream.requests] == ["fake-large"]  # no small call


def test_a_second_sample_gives_the_agreement_signal_and_stays_hidden(
    gw: Any, upstream: FakeOpenAI
) -> None:
    _small_says(upstream, "3 + 4 = 7. The answer is 7.")
    r = _post(gw, "agreeing")
    assert r.status_code == 200, r.text
    sent = upstream.requests[-1]
    assert sent["model"] == "fake-small" and sent["n"] == 2
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"].startswith("passed verifier verifier-agree 0.00")
    body = r.json()
    assert len(body["choices"]) == 1  # the client asked for one answer
    assert body["usage"]["completion_tokens"] == 20  # both samples were billed
