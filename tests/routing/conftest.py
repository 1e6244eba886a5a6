"""A gateway whose models declare capabilities, on the fake OpenAI-compatible upstream and a
real Redis: a small model without vision or tools and a 300-token window, a large one with
both and a 100k window; routes that always pick the small tier by score (threshold 1.0), one
with conversation affinity."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from gateway.config import Settings
from gateway.keys import create_key
from tests.conftest import model_cfg
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, RedisServer

KEY_ENV = "FRUGAL_TEST_ROUTING_KEY"
SMALL_WINDOW = 300


def routing_settings(url: str, policies: Any, **over: Any) -> Settings:
    price = {"input_per_mtok": "0.10", "output_per_mtok": "0.20"}
    models = {
        "small-a": model_cfg(url, "fake-small", tier="small", api_key_env=KEY_ENV, price=price,
                             max_input_tokens=SMALL_WINDOW, vision=False, tools=False),
        "large-a": model_cfg(url, "fake-large", tier="large", api_key_env=KEY_ENV,
                             max_input_tokens=100_000, vision=True, tools=True,
                             price={"input_per_mtok": "2", "output_per_mtok": "8"}),
    }  # fmt: skip
    routes = {
        "auto": {"tiers": ["small", "large"], "threshold": 1.0},
        "sticky": {"tiers": ["small", "large"], "threshold": 1.0, "affinity": {"window_s": 120}},
        "small-only": {"tiers": ["small"], "threshold": 1.0},
    }
    cfg: dict[str, Any] = {
        "models": models, "routes": routes, "policies_dir": policies,
        "resilience": {"retries": 0, "backoff_s": 0.01, "cooldown_s": 30},
    }  # fmt: skip
    cfg.update(over)
    return Settings(**cfg)


@dataclass
class Routed:
    client: openai.OpenAI
    fake: FakeOpenAI
    redis_url: str


@pytest.fixture(scope="module")
def routed(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Routed]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    folder = tmp_path_factory.mktemp("policies")
    key = create_key(folder, "routing")
    settings = routing_settings(fake_openai.url, folder, redis_url=redis_server.url)
    try:
        with GatewayServer(settings) as gw:
            client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)
            yield Routed(client, fake_openai, redis_server.url)
            client.close()
    finally:
        mp.undo()


@pytest.fixture
def gw(routed: Routed, upstream: FakeOpenAI) -> Routed:
    return routed
