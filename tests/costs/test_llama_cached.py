"""A real llama.cpp server reports the prompt tokens it reused from its cache
(`prompt_tokens_details.cached_tokens`); a local model priced with a cached rate is billed less
for them, through the gateway. The same prompt twice: the second reuses all but the last token."""

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from gateway.config import Settings
from tests.conftest import model_cfg
from tests.support.servers import GatewayServer, LlamaServer

PRICE = {"input_per_mtok": "10", "cached_input_per_mtok": "1", "output_per_mtok": "30"}
PROMPT = "Once upon a time there was a little girl named Lily who loved to play in the park."


@pytest.fixture(scope="module")
def url(llama_chat: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        models={"stories": model_cfg(llama_chat.url, "stories-chat", price=PRICE)},
        policies_dir=tmp_path_factory.mktemp("p"), auth={"anonymous_team": "default"},
        cache={"enabled": False},
    )  # fmt: skip
    with GatewayServer(settings) as gw:
        yield gw.url


def test_reused_prompt_tokens_are_billed_at_the_cached_rate(url: str) -> None:
    body = {"model": "stories", "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 4, "temperature": 0}  # fmt: skip
    costs, usages = [], []
    for _ in range(2):
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        assert r.status_code == 200, r.text
        costs.append(Decimal(r.headers["x-frugal-cost-usd"]))
        usages.append(r.json()["usage"])
    second = usages[1]
    cached = second["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < second["prompt_tokens"]
    uncached = second["prompt_tokens"] - cached
    want = (uncached * 10 + cached * 1 + second["completion_tokens"] * 30) / Decimal(1_000_000)
    assert costs[1] == want.quantize(Decimal("0.00000001"))
    assert costs[1] < costs[0]
