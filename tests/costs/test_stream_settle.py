"""Issue 12, problem 4: a stream is settled once, with the last usage the upstream reported,
also when the upstream reports usage on every chunk (vLLM's `continuous_usage_stats`)."""

import time
from decimal import Decimal
from typing import Any

import httpx
import orjson

from tests.costs.conftest import admin
from tests.support.fake_openai import FakeOpenAI
from tests.telemetry.support import scrape
from tests.telemetry.test_metrics_endpoint import value

# small-a: "Say hello" is 5 prompt tokens; 10 completion tokens at $100 / $200 per Mtok.
FULL = Decimal(5 * 100 + 10 * 200) / 1_000_000  # $0.0025
ONE_TOKEN = Decimal(5 * 100 + 1 * 200) / 1_000_000  # what settling on the first chunk charged


def _stream(url: str, key: str, include_usage: bool) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"model": "small-a", "stream": True,
                            "messages": [{"role": "user", "content": "Say hello"}]}  # fmt: skip
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    r = httpx.post(f"{url}/v1/chat/completions", json=body,
                   headers={"authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    lines = [ln[6:] for ln in r.text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [orjson.loads(ln) for ln in lines[:-1]]


def _spend(url: str, team: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        spend: dict[str, Any] = admin(url, f"/admin/spend?team={team}&period=month")
        if spend["totals"]["requests"] >= requests or time.monotonic() > deadline:
            return spend
        time.sleep(0.05)


def test_usage_on_every_chunk_settles_once_with_the_last(
    priced_gateway: tuple[str, dict[str, str]], upstream: FakeOpenAI
) -> None:
    url, keys = priced_gateway
    upstream.script.usage_every_chunk = True
    before = value(scrape(url), "frugal_cost_usd_total", team="support")
    chunks = _stream(url, keys["support"], include_usage=True)
    usages = [c["usage"] for c in chunks if c.get("usage")]
    assert len(usages) == 11  # one per word, then the upstream's final usage chunk
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 10
    assert Decimal(final["x_frugal"]["cost_usd"]) == FULL
    assert all("x_frugal" not in c for c in chunks[:-1])  # the cost rides on the final chunk only
    spend = _spend(url, "support", 1)
    assert spend["totals"]["requests"] == 1
    row = spend["rows"][0]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (5, 10)
    assert Decimal(row["cost_usd"]) == FULL != ONE_TOKEN
    budgets = admin(url, "/admin/budgets?team=support")["budgets"]
    assert all(Decimal(b["spent_usd"]) == FULL for b in budgets)
    assert all(Decimal(b["reserved_usd"]) == 0 for b in budgets)
    after = value(scrape(url), "frugal_cost_usd_total", team="support")
    assert Decimal(str(after - before)).quantize(Decimal("0.0000001")) == FULL  # counted once


def test_usage_on_every_chunk_is_hidden_when_not_asked_for(
    priced_gateway: tuple[str, dict[str, str]], upstream: FakeOpenAI
) -> None:
    url, keys = priced_gateway
    upstream.script.usage_every_chunk = True
    before = value(scrape(url), "frugal_cost_usd_total", team="research")
    chunks = _stream(url, keys["research"], include_usage=False)
    assert chunks and all(c["choices"] and "usage" not in c for c in chunks)
    _spend(url, "research", 1)
    after = value(scrape(url), "frugal_cost_usd_total", team="research")
    assert Decimal(str(after - before)).quantize(Decimal("0.0000001")) == FULL


def test_usage_only_alongside_choices_still_ends_with_a_costed_usage_chunk(
    priced_gateway: tuple[str, dict[str, str]], upstream: FakeOpenAI
) -> None:
    """No final usage-only chunk (usage rides on content chunks only): the last one is billed
    and the client that asked for usage gets a closing chunk with the cost."""
    url, keys = priced_gateway
    upstream.script.usage_every_chunk = True
    upstream.script.usage = False  # no separate final usage chunk
    chunks = _stream(url, keys["support"], include_usage=True)
    final = chunks[-1]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 10
    assert Decimal(final["x_frugal"]["cost_usd"]) == FULL
    assert "estimated_usage" not in final["x_frugal"]
