"""/metrics on a real gateway (uvicorn in a thread) against the fake upstream: who may read it,
the values known traffic leaves there, the spec's bucket boundaries, and labels that never
carry a key, a prompt or a request id."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer
from tests.telemetry.support import (
    ADMIN_KEY,
    UPSTREAM_KEY_ENV,
    chat,
    config,
    scrape,
    write_policies,
)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples(text).items() if n == name and want <= ls)


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    policies = tmp_path_factory.mktemp("policies")
    keys = write_policies(policies)
    cfg = config(fake_openai.url, policies_dir=policies, cache={"enabled": False})
    with GatewayServer(Settings(**cfg)) as gw:
        yield gw.url, keys
    mp.undo()


def test_metrics_needs_the_admin_key(
    gateway: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, keys = gateway
    assert httpx.get(f"{url}/metrics").status_code == 401
    wrong = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {keys['research']}"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    monkeypatch.delenv("FRUGAL_ADMIN_KEY")
    off = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert off.status_code == 403 and "FRUGAL_ADMIN_KEY" in off.json()["error"]["message"]


def test_metrics_open_needs_no_key(fake_openai: FakeOpenAI, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("FRUGAL_ADMIN_KEY", raising=False)
    write_policies(tmp_path)
    cfg = config(fake_openai.url, policies_dir=tmp_path, telemetry={"metrics_open": True})
    with GatewayServer(Settings(**cfg)) as gw:
        r = httpx.get(f"{gw.url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "frugal_cost_usd_total" in r.text


def test_known_traffic_shows_in_metrics(
    gateway: tuple[str, dict[str, str]], upstream: FakeOpenAI
) -> None:
    url, keys = gateway
    before = scrape(url)
    assert value(before, "frugal_cost_usd_total", team="research") == 0  # created at 0
    r1 = chat(url, keys["research"], "auto")
    assert r1.status_code == 200 and r1.headers["x-frugal-tier"] == "small"
    r2 = chat(url, keys["research"], "always-large")
    assert r2.headers["x-frugal-tier"] == "large"
    r3 = chat(url, keys["research"], "auto", stream=True)
    assert r3.status_code == 200 and "[DONE]" in r3.text
    assert chat(url, keys["broke"], "auto").status_code == 429
    text = scrape(url)
    assert value(text, "frugal_cost_usd_total", team="research") == pytest.approx(0.095)
    assert value(text, "frugal_cost_usd_total", team="research", tier="large") == 0.09
    assert value(text, "frugal_savings_usd_total", team="research",
                 source="routing") == pytest.approx(0.175)  # fmt: skip
    assert value(text, "frugal_requests_total", team="research", outcome="ok") == 3
    assert value(text, "frugal_refusals_total", team="broke", reason="InsufficientQuota") == 1
    assert (
        value(
            text,
            "frugal_route_decisions_total",
            route="auto",
            tier="small",
            reason="score_below_threshold",
        )
        == 3
    )  # fmt: skip  (the refused one too)
    tokens = dict(
        gen_ai_operation_name="chat",
        gen_ai_provider_name="openai",
        gen_ai_request_model="auto",
        gen_ai_response_model="small-a",
        team="research",
    )
    assert (
        value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **tokens) == 10
    )  # fmt: skip  (5 + 5)
    assert value(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **tokens) == 20
    assert value(text, "gen_ai_client_operation_time_to_first_chunk_seconds_count",
                 tier="small") == 1  # fmt: skip
    assert value(text, "gen_ai_client_operation_duration_seconds_count", tier="small",
                 error_type="") == 2  # fmt: skip


def test_bucket_boundaries_follow_the_genai_spec(gateway: tuple[str, dict[str, str]]) -> None:
    url, keys = gateway
    chat(url, keys["research"], "auto")
    text = scrape(url)
    token_les = {dict(ls)["le"] for (n, ls) in samples(text)
                 if n == "gen_ai_client_token_usage_bucket"}  # fmt: skip
    assert {"1.0", "4.0", "16.0", "1.048576e+06", "6.7108864e+07", "+Inf"} <= token_les
    assert len(token_les) == 15
    dur_les = {dict(ls)["le"] for (n, ls) in samples(text)
               if n == "gen_ai_client_operation_duration_seconds_bucket"}  # fmt: skip
    assert {"0.01", "0.02", "0.04", "1.28", "81.92", "+Inf"} <= dur_les
    assert len(dur_les) == 15


def test_labels_never_carry_keys_prompts_or_request_ids(
    gateway: tuple[str, dict[str, str]],
) -> None:
    url, keys = gateway
    secret = "zebra-unicorn-prompt"
    r = chat(url, keys["research"], "auto", content=f"Tell me about {secret}")
    bad = chat(url, keys["research"], "model-that-does-not-exist-42")
    assert bad.status_code == 404
    text = scrape(url)
    for needle in (secret, keys["research"], r.headers["x-request-id"],
                   bad.headers["x-request-id"], "model-that-does-not-exist-42"):  # fmt: skip
        assert needle not in text
    assert value(text, "frugal_requests_total", outcome="ModelNotFound") == 1
