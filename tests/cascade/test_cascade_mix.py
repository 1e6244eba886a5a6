"""`cascade.mix` end to end on the fake hosted upstream, with the shipped prompt router
(`artifact.DEFAULT_NAME`, the route's `router: default`) scoring the prompt: the same
borderline small answer is escalated for a prompt the router scores high and kept for one it
scores low; the verifier alone keeps both; a route scoring with another router falls back to
the verifier alone; both calls are costed and a team whose budget says small only is not escalated.
The test verifier's recorded mix standardises the router's logit around the midpoint of the
two prompts' scores (measured here), so each verdict is known:
  verifier: sigmoid(-4 x -0.45 - 2) = 0.45 (below its threshold 0.5: it passes alone);
  mixed, weight 0.5: sigmoid(0.5 x (+-2) + 0.5 x logit(0.45)) = 0.71 (high) / 0.25 (low)."""

import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.config import CascadeConfig, Settings
from gateway.keys import create_key
from gateway.router.artifact import DEFAULT_NAME
from gateway.router.loading import load_scorer
from gateway.router.verifier import Mix
from tests.cascade.conftest import write_verifier
from tests.conftest import model_cfg
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer

KEY_ENV = "FRUGAL_TEST_CASCADE_MIX_KEY"
HARD = [{"role": "user", "content": "Prove that there are infinitely many primes congruent to 3 "
         "mod 4, then write a Python function that counts them below n efficiently and "
         "analyse its complexity."}]  # fmt: skip
EASY = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "Here is my answer."
BORDERLINE = -0.45  # every token's log-probability: the test verifier says 0.45
POLICY = """
teams:
  open: {}
  tight:
    budgets: {day: "0.10"}
    soft: {at: 0.05, actions: [force_small_tier]}
"""


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _mix(router: str = DEFAULT_NAME) -> Mix:
    """Standardisation that puts HARD at z = +2 and EASY at z = -2 (their scores measured)."""
    scorer = load_scorer("default")
    hard, easy = _logit(scorer.score(HARD)), _logit(scorer.score(EASY))
    assert hard > easy + 0.2, "the shipped router no longer tells the two prompts apart"
    thresholds = {f"{0.05 * i:.2f}": 0.5 for i in range(21)}
    return Mix(router, 0.5, (hard + easy) / 2, (hard - easy) / 4, 0.0, 1.0, 0.5, thresholds)


@pytest.fixture(scope="module")
def verifier_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("mix"), "verifier-mix", mix=_mix())


@pytest.fixture(scope="module")
def gw(
    fake_openai: FakeOpenAI, verifier_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    policies = tmp_path_factory.mktemp("policies")
    (policies / "teams.yaml").write_text(POLICY)
    keys = {t: create_key(policies, t) for t in ("open", "tight")}

    def model(upstream: str, tier: str, out: str) -> dict[str, Any]:
        return model_cfg(fake_openai.url, upstream, tier=tier, api_key_env=KEY_ENV,
                         price={"input_per_mtok": "0.10", "output_per_mtok": out})  # fmt: skip

    def route(router: str, mix: Any) -> dict[str, Any]:
        cascade = {"verifier": str(verifier_path), "mix": mix}
        return {"tiers": ["small", "large"], "router": router, "threshold": 1.0,
                "cascade": cascade}  # fmt: skip

    settings = Settings(
        models={"small-a": model("fake-small", "small", "0.20"),
                "large-a": model("fake-large", "large", "8.00"),
                "pricey": model("fake-pricey", "medium", "1000")},
        routes={"mixed": route("default", "auto"), "alone": route("default", 0),
                "heuristic-mixed": route("heuristic", "auto")},
        policies_dir=policies,
    )  # fmt: skip
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c, keys
    mp.undo()


def _post(
    gw: tuple[httpx.Client, dict[str, str]], model: str, messages: Any, team: str = "open"
) -> httpx.Response:
    client, keys = gw
    body = {"model": model, "messages": messages, "max_tokens": 20}
    auth = {"authorization": f"Bearer {keys[team]}"}
    r = client.post("/v1/chat/completions", json=body, headers=auth)
    assert r.status_code == 200, r.text
    return r


@pytest.fixture
def borderline(upstream: FakeOpenAI) -> FakeOpenAI:
    upstream.script.reply = lambda body: ANSWER if body["model"] == "fake-small" else "Large."
    upstream.script.logprob = BORDERLINE
    return upstream


def test_the_mix_escalates_a_prompt_the_router_scores_high(gw: Any, borderline: FakeOpenAI) -> None:
    small_only = Decimal(_post(gw, "small-a", HARD).headers["x-frugal-cost-usd"])
    large_only = Decimal(_post(gw, "large-a", HARD).headers["x-frugal-cost-usd"])
    borderline.requests.clear()
    r = _post(gw, "mixed", HARD)
    assert r.headers["x-frugal-model"] == "large-a"
    cascade = r.headers["x-frugal-cascade"]
    assert cascade.startswith(f"escalated from small-a: mix 0.5 of router {DEFAULT_NAME} 0.")
    assert "verifier verifier-mix 0.450: 0.71" in cascade, cascade
    assert "cascade: small answer mix 0.5" in r.headers["x-frugal-route-reason"]
    assert [q["model"] for q in borderline.requests] == ["fake-small", "fake-large"]
    assert r.json()["choices"][0]["message"]["content"] == "Large."
    assert Decimal(r.headers["x-frugal-cost-usd"]) == small_only + large_only  # both calls


def test_the_mix_keeps_the_same_answer_to_a_prompt_the_router_scores_low(
    gw: Any, borderline: FakeOpenAI
) -> None:
    r = _post(gw, "mixed", EASY)
    assert r.headers["x-frugal-model"] == "small-a"
    cascade = r.headers["x-frugal-cascade"]
    assert cascade.startswith(f"passed mix 0.5 of router {DEFAULT_NAME} 0.")
    assert "verifier verifier-mix 0.450: 0.2" in cascade and cascade.endswith("<0.5"), cascade
    assert r.json()["choices"][0]["message"]["content"] == ANSWER
    assert [q["model"] for q in borderline.requests] == ["fake-small"]


def test_the_mix_does_not_escalate_when_the_budget_says_small_only(
    gw: Any, borderline: FakeOpenAI
) -> None:
    _post(gw, "pricey", EASY, team="tight")  # ~$0.02 of $0.10: past the 5% soft limit
    r = _post(gw, "mixed", HARD, team="tight")
    assert r.headers["x-frugal-model"] == "small-a"
    cascade = r.headers["x-frugal-cascade"]
    assert cascade.startswith("not escalated (team.day") and "mix 0.5 of router" in cascade
    assert "small tier forced" in r.headers["x-frugal-route-reason"]


def test_the_verifier_alone_keeps_the_borderline_answer(gw: Any, borderline: FakeOpenAI) -> None:
    r = _post(gw, "alone", HARD)
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"] == "passed verifier verifier-mix 0.450<0.5"


def test_another_router_falls_back_to_the_verifier_alone(gw: Any, borderline: FakeOpenAI) -> None:
    r = _post(gw, "heuristic-mixed", HARD)
    assert r.headers["x-frugal-model"] == "small-a"
    assert r.headers["x-frugal-cascade"] == (
        f"passed verifier verifier-mix (no {DEFAULT_NAME} score to mix) 0.450<0.5"
    )


# --- configuration --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("plain"), "verifier-plain")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mix": "auto"}, "mix needs `verifier`"),
        ({"mix": 1.5, "verifier": "MIX"}, "not within 0..1"),
        ({"mix": -0.1, "verifier": "MIX"}, "not within 0..1"),
        ({"mix": "sometimes", "verifier": "MIX"}, "mix"),
        ({"mix": 0.33, "verifier": "MIX"}, "no recorded threshold for mix weight 0.33"),
        ({"mix": "auto", "verifier": "PLAIN"}, "records no mix"),
    ],
)
def test_a_mix_the_verifier_cannot_serve_is_rejected(
    fields: dict[str, Any], message: str, verifier_path: Path, plain_path: Path
) -> None:
    names = {"MIX": str(verifier_path), "PLAIN": str(plain_path)}
    fields = {k: names.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    with pytest.raises(ValidationError, match=message):
        CascadeConfig(**fields)


def test_a_mix_on_the_recorded_grid_or_with_a_threshold_is_accepted(verifier_path: Path) -> None:
    from gateway.cascade import mix_of
    from gateway.router.verifier import load_verifier

    verifier = load_verifier(str(verifier_path))
    auto = mix_of(CascadeConfig(verifier=str(verifier_path), mix="auto"), verifier)
    assert auto is not None and auto.weight == 0.5 and auto.threshold == 0.5
    grid = mix_of(CascadeConfig(verifier=str(verifier_path), mix=0.35), verifier)
    assert grid is not None and grid.weight == 0.35
    own = mix_of(CascadeConfig(verifier=str(verifier_path), mix=0.33, threshold=0.6), verifier)
    assert own is not None and (own.weight, own.threshold) == (0.33, 0.6)
    assert mix_of(CascadeConfig(verifier=str(verifier_path)), verifier) is None  # default: off
