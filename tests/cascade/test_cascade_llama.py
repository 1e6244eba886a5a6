"""A cascade route whose small tier is a real llama.cpp server (stories260K): the gateway asks
it for log-probabilities, the verifier reads them in llama-server's wire format, and the
answer is escalated to the large tier (the fake hosted upstream) or kept."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gateway.config import Settings
from gateway.router.verifier import VerifierModel, signals
from tests.conftest import model_cfg
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, LlamaServer

KEY_ENV = "FRUGAL_TEST_CASCADE_LLAMA_KEY"
MSG = [{"role": "user", "content": "Tell me a story about a cat."}]


def _verifier(folder: Path, name: str, weight: float) -> Path:
    """P(large better) = sigmoid(weight * lp_present - 5): with weight 10 an answer that came
    with log-probabilities is escalated, without them it passes."""
    model = VerifierModel(name, ("logprob",), ("lp_present",), np.zeros(1), np.ones(1),
                          np.array([weight]), -5.0, 0.5, {})  # fmt: skip
    path = folder / f"{name}.json"
    path.write_text(json.dumps(model.to_json()))
    return path


@pytest.fixture(scope="module")
def gw(
    llama_chat: LlamaServer, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    folder = tmp_path_factory.mktemp("verifiers")
    reads = _verifier(folder, "verifier-llama-reads", 10.0)
    # max_tokens cuts these short: leave the verdict to the verifier, not to "truncated"
    checks = {"verifier": str(reads), "escalate_on": ["empty", "refusal"]}
    settings = Settings(
        models={
            "stories": model_cfg(
                llama_chat.url,
                "stories-chat",
                tier="small",
                price={"input_per_mtok": "0.01", "output_per_mtok": "0.03"},
            ),
            "large-a": model_cfg(
                fake_openai.url,
                "fake-large",
                tier="large",
                api_key_env=KEY_ENV,
                price={"input_per_mtok": "2.00", "output_per_mtok": "8.00"},
            ),
        },
        routes={
            "cascade": {
                "tiers": ["small", "large"],
                "threshold": 1.0,
                "cascade": {**checks, "threshold": 0.5},
            },
            "checked": {
                "tiers": ["small", "large"],
                "threshold": 1.0,
                "cascade": {**checks, "stream": "check"},
            },
        },
        policies_dir=tmp_path_factory.mktemp("p"),
        auth={"anonymous_team": "default"},
    )
    with GatewayServer(settings) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
    mp.undo()


def _chat(c: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MSG, "max_tokens": 12, "seed": 1, **extra}
    return c.post("/v1/chat/completions", json=body)


def test_llama_logprobs_reach_the_verifier_and_escalate(
    gw: httpx.Client, upstream: FakeOpenAI
) -> None:
    r = _chat(gw, "cascade")
    assert r.status_code == 200, r.text
    assert r.headers["x-frugal-model"] == "large-a"
    assert r.headers["x-frugal-cascade"].startswith(
        "escalated from stories: verifier verifier-llama-reads 0.99"
    )
    assert float(r.headers["x-frugal-cost-usd"]) > 0  # both calls
    assert [q["model"] for q in upstream.requests] == ["fake-large"]


def test_llama_logprobs_in_the_wire_format_give_every_signal(gw: httpx.Client) -> None:
    r = _chat(gw, "stories", logprobs=True, top_logprobs=5)  # pinned: no cascade
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    sig = signals(MSG, choice["message"]["content"], choice["logprobs"])
    assert sig["lp_present"] == 1.0
    assert sig["lp_mean"] < 0 and sig["lp_min"] <= sig["lp_mean"]
    assert sig["lp_entropy"] > 0  # from the top_logprobs alternatives


def test_a_checked_stream_on_llama_is_replaced_by_the_large_stream(
    gw: httpx.Client, upstream: FakeOpenAI
) -> None:
    body = {"model": "checked", "messages": MSG, "max_tokens": 12, "stream": True}
    with gw.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [x for x in r.iter_lines() if x.startswith("data: {")]
    assert r.status_code == 200
    assert r.headers["x-frugal-model"] == "large-a"
    text = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or ""
                   for x in lines if json.loads(x[6:])["choices"])  # fmt: skip
    assert text == "Frugal routes each prompt to the cheapest good model."
    assert upstream.requests[-1]["stream"] is True


def test_a_text_completion_on_llama_is_checked_too(gw: httpx.Client, upstream: FakeOpenAI) -> None:
    body = {"model": "cascade", "prompt": "Once upon a time", "max_tokens": 8}
    r = gw.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    # llama-server answered the completions API's integer `logprobs` with its log-probabilities
    assert r.headers["x-frugal-cascade"].startswith("escalated from stories: verifier")
    assert r.headers["x-frugal-model"] == "large-a"
    assert (
        upstream.requests[-1]["model"] == "fake-large" and "logprobs" not in upstream.requests[-1]
    )
