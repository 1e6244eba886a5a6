"""Fixtures for the cache tests: a vector-capable Redis (redis-stack-server, started here and
stopped by PID), and gateways configured with a `cache:` section, run against the fake
upstream, with keys for two teams."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis_stack import RedisStackServer
from tests.support.servers import GatewayServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

ADMIN_KEY = "admin-secret-for-tests-123"


@pytest.fixture(scope="session")
def redis_stack() -> Iterator[RedisStackServer]:
    server = RedisStackServer().start()
    yield server
    server.stop()


@dataclass
class Gateway:
    url: str
    keys: dict[str, str]  # team -> API key
    clients: dict[str, openai.OpenAI] = field(default_factory=dict)  # closed with the gateway

    def client(self, team: str = "alpha") -> openai.OpenAI:
        if team not in self.clients:
            self.clients[team] = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[team],
                                               max_retries=0)  # fmt: skip
        return self.clients[team]

    def auth(self, team: str = "alpha") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[team]}"}


@contextmanager
def cache_gateway(
    fake: FakeOpenAI, folder: Path, cache: dict[str, Any], **over: Any
) -> Iterator[Gateway]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    keys = {team: create_key(folder, team) for team in ("alpha", "beta")}
    try:
        # The tests' client and the gateway share one process (and its GIL) on a busy CI box:
        # give store operations a second, not production's 50 ms, unless a test sets its own.
        cache = {"timeout_ms": 1000, **cache}
        with GatewayServer(settings_for(fake.url, folder, cache=cache, **over)) as gw:
            g = Gateway(gw.url, keys)
            try:
                yield g
            finally:
                for c in g.clients.values():
                    c.close()
    finally:
        mp.undo()


DETERMINISTIC = {"temperature": 0}
MSG = [{"role": "user", "content": "Say hello"}]
