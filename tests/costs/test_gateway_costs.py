"""Costs through the gateway against the fake upstream: cached tokens priced apart, a model
priced from litellm's map, no silent $0, and budget holds that really cap output."""

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from gateway.budget.estimate import IMAGE_TOKENS, IMAGE_TOKENS_LOW, prompt_extra
from gateway.cli import main
from gateway.config import ConfigError, Settings, load_settings
from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer

UPSTREAM_KEY_ENV = "FRUGAL_TEST_UPSTREAM_KEY"
ADMIN = "admin-secret-for-cost-tests"
BUDGET = Decimal("0.02")
MAX_OUT = 500
THINKER = {"input_per_mtok": "1.00", "output_per_mtok": "10.00"}
# The hold of one request to `thinker` without max_tokens: its few prompt tokens (< 50) at
# $1/M plus MAX_OUT output tokens at $10/M.
ONE_HOLD = (50 * Decimal("1.00") + MAX_OUT * Decimal("10.00")) / 1_000_000


def _models(url: str) -> dict[str, Any]:
    key = {"api_key_env": UPSTREAM_KEY_ENV, "base_url": url, "provider": "openai"}
    return {
        "priced": {**key, "model": "fake-priced", "tier": "large",
                   "price": {"input_per_mtok": "2.00", "cached_input_per_mtok": "0.50",
                             "output_per_mtok": "8.00"}},
        "gpt-4.1": {**key, "model": "gpt-4.1", "tier": "large"},  # no price: litellm's map
        "thinker": {**key, "model": "o4-mini", "tier": "large", "price": THINKER,
                    "max_output_tokens": MAX_OUT},
        "slow": {**key, "model": "fake-slow", "tier": "large", "price": THINKER,
                 "max_output_tokens": MAX_OUT, "timeouts": {"connect_s": 1, "read_s": 0.3}},
        "plain-thinker": {**key, "model": "fake-think", "tier": "large", "price": THINKER,
                          "max_output_tokens": MAX_OUT},
    }  # fmt: skip


@pytest.fixture(scope="module")
def gw(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    policies = tmp_path_factory.mktemp("policies")
    (policies / "teams.yaml").write_text(yaml.safe_dump(
        {"teams": {"capped": {"budgets": {"month": str(BUDGET)}}, "open": {},
                   "timeouts": {"budgets": {"month": "1.00"}}}}))  # fmt: skip
    keys = {t: create_key(policies, t) for t in ("capped", "open", "timeouts")}
    settings = Settings(models=_models(fake_openai.url), policies_dir=policies,
                        resilience={"retries": 0}, budget={"reload_interval_s": 0})  # fmt: skip
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c, keys
    mp.undo()


def _chat(gw: Any, team: str, model: str, **extra: Any) -> httpx.Response:
    c, keys = gw
    body = {"model": model, "messages": [{"role": "user", "content": "Think hard"}], **extra}
    return c.post("/v1/chat/completions", json=body,
                  headers={"authorization": f"Bearer {keys[team]}"})  # fmt: skip


@pytest.mark.parametrize("model", ["priced", "gpt-4.1"])
def test_cached_prompt_tokens_are_priced_as_cached(
    gw: Any, upstream: FakeOpenAI, model: str
) -> None:
    """10,000 prompt tokens of which 8,000 cached and 100 completion tokens at 2.00 / cached
    0.50 / output 8.00 per Mtok: 2,000 x 2 + 8,000 x 0.5 + 100 x 8 = $0.0088 (a flat formula:
    $0.0208). `gpt-4.1` has no `price:`; litellm's map gives it the same rates."""
    upstream.script.prompt_tokens = 10_000
    upstream.script.completion_tokens = 100
    upstream.script.usage_extra = {"prompt_tokens_details": {"cached_tokens": 8_000}}
    r = _chat(gw, "open", model)
    assert r.status_code == 200, r.text
    assert Decimal(r.headers["x-frugal-cost-usd"]) == Decimal("0.0088")
    assert r.headers["x-frugal-cost-usd"] == "0.0088"
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] == 10_000
    assert usage["prompt_tokens_details"]["cached_tokens"] == 8_000


def test_a_stream_prices_its_cached_tokens_too(gw: Any, upstream: FakeOpenAI) -> None:
    upstream.script.prompt_tokens = 10_000
    upstream.script.usage_extra = {"prompt_tokens_details": {"cached_tokens": 8_000}}
    r = _chat(gw, "open", "gpt-4.1", stream=True, stream_options={"include_usage": True})
    events = [orjson.loads(ln[6:]) for ln in r.text.splitlines()
              if ln.startswith("data: {")]  # fmt: skip
    final = events[-1]
    assert final["usage"]["completion_tokens"] == 10
    # 2,000 x 2 + 8,000 x 0.5 + 10 x 8 per M
    assert Decimal(final["x_frugal"]["cost_usd"]) == Decimal("0.00808")


def _write(tmp_path: Path, models: dict[str, Any]) -> Path:
    p = tmp_path / "frugal.yaml"
    p.write_text(yaml.safe_dump({"models": models, "policies_dir": str(tmp_path)}))
    return p


def test_an_unpriced_unknown_model_fails_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:9/v1"
    p = _write(tmp_path, {"mystery": {"model": "mystery-model-7b", "base_url": url}})
    with pytest.raises(SystemExit) as e:
        main(["check-config", "--config", str(p)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "models.mystery" in err and "mystery-model-7b" in err and "price" in err
    with pytest.raises(ConfigError, match="mystery-model-7b"):  # the same at start-up
        load_settings(p)


def test_a_free_model_says_so_and_map_prices_show_their_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:9/v1"
    p = _write(tmp_path, {
        "free": {"model": "mystery-model-7b", "base_url": url,
                 "price": {"input_per_mtok": 0, "output_per_mtok": 0}},
        "big": {"model": "gpt-4.1", "base_url": url},
        "claude": {"model": "my-claude", "base_url": url,
                   "price_from": "anthropic/claude-sonnet-4-5"},
    })  # fmt: skip
    assert main(["check-config", "--config", str(p)]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 models")
    assert main(["prices", "--config", str(p), "--json"]) == 0
    rows = {r["model"]: r for r in orjson.loads(capsys.readouterr().out)}
    assert rows["free"]["source"] == "config"
    assert rows["free"]["per_mtok"]["input"] == rows["free"]["per_mtok"]["output"] == "0"
    assert rows["big"]["source"].endswith("map: gpt-4.1")
    assert rows["big"]["source"].startswith("litellm ")
    big = {k: Decimal(v) for k, v in rows["big"]["per_mtok"].items()}
    assert (big["input"], big["cached_input"], big["output"]) == (2, Decimal("0.5"), 8)
    claude = {k: Decimal(v) for k, v in rows["claude"]["per_mtok"].items()}
    assert rows["claude"]["source"].endswith("map: claude-sonnet-4-5")
    assert (claude["cache_write"], claude["cache_write_1h"]) == (Decimal("3.75"), 6)
    assert main(["prices", "--config", str(p)]) == 0
    table = capsys.readouterr().out
    assert "gpt-4.1" in table and "map: gpt-4.1" in table


def _spent(gw: Any, team: str) -> tuple[Decimal, Decimal]:
    c, _ = gw
    deadline = time.monotonic() + 10
    while True:
        r = c.get(f"/admin/budgets?team={team}", headers={"authorization": f"Bearer {ADMIN}"})
        b = r.json()["budgets"][0]
        spent, held = Decimal(b["spent_usd"]), Decimal(b["reserved_usd"])
        if held == 0 or time.monotonic() > deadline:
            return spent, held
        time.sleep(0.05)


def test_a_reasoning_model_never_overshoots_the_budget_by_more_than_one_hold(
    gw: Any, upstream: FakeOpenAI
) -> None:
    """Uncapped, the upstream would write 100,000 tokens ($1.00, 50x the budget) per request.
    The gateway sends the cap its hold was worked out with, so each request costs at most
    its hold, and the team stops within one hold of its budget."""
    upstream.script.reasoning_writes = 100_000
    codes = []
    for _ in range(8):
        r = _chat(gw, "capped", "thinker")
        codes.append(r.status_code)
        if r.status_code == 200:
            assert Decimal(r.headers["x-frugal-cost-usd"]) <= ONE_HOLD
            assert r.json()["choices"][0]["finish_reason"] == "length"
    assert codes[0] == 200 and codes[-1] == 429, codes
    for sent in upstream.requests:
        assert sent["max_completion_tokens"] == MAX_OUT and "max_tokens" not in sent
    spent, held = _spent(gw, "capped")
    assert held == 0
    assert spent <= BUDGET + ONE_HOLD
    assert spent >= BUDGET - 2 * ONE_HOLD  # it was really spent, up to the budget


def test_the_cap_uses_max_tokens_for_other_families_and_clamps_the_clients(
    gw: Any, upstream: FakeOpenAI
) -> None:
    upstream.script.reasoning_writes = 100_000
    assert _chat(gw, "open", "plain-thinker").status_code == 200
    assert upstream.requests[-1]["max_tokens"] == MAX_OUT
    assert "max_completion_tokens" not in upstream.requests[-1]
    r = _chat(gw, "open", "thinker", max_tokens=5_000)  # more than the model's cap
    assert r.status_code == 200
    assert upstream.requests[-1]["max_completion_tokens"] == MAX_OUT
    assert r.json()["usage"]["completion_tokens"] == MAX_OUT
    r = _chat(gw, "open", "thinker", max_completion_tokens=20)
    assert upstream.requests[-1]["max_completion_tokens"] == 20
    assert r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 10


def test_the_prompt_estimate_counts_tools_schemas_images_and_token_ids() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a customer's order history by email address",
                "parameters": {"type": "object", "properties": {"email": {"type": "string"}}},
            },
        }
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"verdict": {"type": "string"}}},
        },
    }
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    low = {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "low"}}
    msgs = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image, low]}]
    assert prompt_extra({"messages": msgs}) == IMAGE_TOKENS + IMAGE_TOKENS_LOW
    with_tools = prompt_extra({"messages": [], "tools": tools})
    assert with_tools > 20
    assert prompt_extra({"messages": [], "response_format": schema}) > 10
    assert prompt_extra({"prompt": [[1, 2, 3], [4, 5]]}) == 5
    assert prompt_extra({"prompt": [101, 102, 103, 104]}) == 4
    assert prompt_extra({"input": [[1, 2], [3]]}) == 3  # embeddings of token ids
    assert prompt_extra({"prompt": "text is counted elsewhere"}) == 0


def test_a_timeout_after_sending_is_charged_and_says_so(gw: Any, upstream: FakeOpenAI) -> None:
    """The upstream got the request and may bill it (it keeps generating after we stop
    waiting): the team is charged the most it can bill, the request's hold, marked."""
    upstream.script.delay_s = 1.0  # past read_s
    r = _chat(gw, "timeouts", "slow")
    assert r.status_code == 504
    assert r.headers["x-frugal-charged-failure"] == "upstream may have billed"
    assert r.headers["x-frugal-usage-estimated"] == "true"
    charged = Decimal(r.headers["x-frugal-cost-usd"])
    assert MAX_OUT * Decimal("10.00") / 1_000_000 < charged <= ONE_HOLD
    spent, held = _spent(gw, "timeouts")
    assert held == 0 and spent == charged
    upstream.script.delay_s = 0
    upstream.script.fail_next, upstream.script.fail_status = 1, 500  # surely not processed
    r = _chat(gw, "timeouts", "slow")
    assert r.status_code == 502 and "x-frugal-charged-failure" not in r.headers
    assert _spent(gw, "timeouts") == (spent, Decimal(0))  # released, not charged


def test_cost_by_token_class_in_metrics_and_the_log_line(
    gw: Any, upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.telemetry.test_metrics_endpoint import value

    c, _ = gw
    admin = {"authorization": f"Bearer {ADMIN}"}
    before = c.get("/metrics", headers=admin).text
    upstream.script.prompt_tokens = 10_000
    upstream.script.completion_tokens = 100
    upstream.script.usage_extra = {
        "prompt_tokens_details": {"cached_tokens": 8_000},
        "completion_tokens_details": {"reasoning_tokens": 60},
    }
    with caplog.at_level("INFO", logger="frugal.request"):
        r = _chat(gw, "timeouts", "priced")
    assert Decimal(r.headers["x-frugal-cost-usd"]) == Decimal("0.0088")
    after = c.get("/metrics", headers=admin).text

    def delta(name: str, cls: str) -> float:
        labels = {"team": "timeouts", "model": "priced", "token_class": cls}
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("frugal_tokens_total", "input_uncached") == 2_000
    assert delta("frugal_tokens_total", "input_cached") == 8_000
    assert delta("frugal_tokens_total", "output") == 40
    assert delta("frugal_tokens_total", "output_reasoning") == 60
    cost = "frugal_cost_by_class_usd_total"
    assert delta(cost, "input_uncached") == pytest.approx(0.004)
    assert delta(cost, "input_cached") == pytest.approx(0.004)
    assert delta(cost, "output") + delta(cost, "output_reasoning") == pytest.approx(0.0008)
    line = next(m.getMessage() for m in caplog.records
                if r.headers["x-request-id"] in m.getMessage())  # fmt: skip
    assert "prompt_tokens=10000 completion_tokens=100" in line
    assert "cached_tokens=8000 cache_write_tokens=0" in line and "reasoning_tokens=60" in line


def test_frugal_spend_shows_the_token_classes(
    gw: Any, upstream: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    c, _ = gw
    upstream.script.prompt_tokens = 10_000
    upstream.script.usage_extra = {
        "prompt_tokens_details": {"cached_tokens": 8_000},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    team = "open"
    r = _chat(gw, team, "priced")
    assert r.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        data = c.get(f"/admin/spend?team={team}", headers={"authorization": f"Bearer {ADMIN}"})
        rows = [x for x in data.json()["rows"] if x["model"] == "priced"]
        if (rows and rows[0]["cached_tokens"] >= 8_000) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows[0]["cached_tokens"] % 8_000 == 0 and rows[0]["cached_tokens"] > 0  # 8,000 each
    assert rows[0]["reasoning_tokens"] > 0
    assert main(["spend", "--team", team, "--url", str(c.base_url)]) == 0
    out = capsys.readouterr().out
    assert "cached" in out and "reasoning" in out and "cached_tokens" in out
