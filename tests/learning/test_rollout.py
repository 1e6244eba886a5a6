"""Shadow, promote and rollback across replicas: two gateways on one Redis follow a switch made
through either of them; a gateway started later starts from it; a gateway whose configuration of
the route differs ignores it."""

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main as frugal
from gateway.config import Settings
from gateway.keys import create_key
from gateway.learning.rollout import state_key
from gateway.store import open_store
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, RedisServer

ADMIN = "admin-key-for-rollout-tests"
KEY_ENV = "FRUGAL_TEST_ROLLOUT_UPSTREAM_KEY"
ROUTE = "roll"


def settings(fake: FakeOpenAI, redis: RedisServer, policies: Path, threshold: float) -> Settings:
    def model(upstream: str, tier: str) -> dict[str, Any]:
        free = {"input_per_mtok": "0", "output_per_mtok": "0"}
        return {"provider": "openai", "model": upstream, "base_url": fake.url, "tier": tier,
                "api_key_env": KEY_ENV, "price": free}  # fmt: skip

    return Settings(
        redis_url=redis.url, policies_dir=policies,
        models={"s": model("fake-small", "small"), "l": model("fake-large", "large")},
        routes={ROUTE: {"tiers": ["small", "large"], "router": "heuristic",
                        "threshold": threshold}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    policies = tmp_path_factory.mktemp("rollout")
    key = create_key(policies, "team-r")
    yield {"key": key, "make": lambda t=0.5: settings(fake_openai, redis_server, policies, t)}
    asyncio.run(_forget(redis_server.url))
    mp.undo()


async def _forget(url: str) -> None:
    store = open_store(url)
    await store.delete(state_key(ROUTE))
    await store.close()


def version(url: str, key: str) -> str:
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": ROUTE, "messages": [{"role": "user", "content": "hi"}]},
                   timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.headers["x-frugal-router-version"]


def admin(url: str, path: str, body: Any = None) -> Any:
    r = httpx.request("POST" if body is not None else "GET", f"{url}{path}", json=body,
                      headers={"authorization": f"Bearer {ADMIN}"}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["routes"][ROUTE]


def within(seconds: float, check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_a_switch_through_one_replica_reaches_every_replica(env: dict[str, Any]) -> None:
    key = env["key"]
    with GatewayServer(env["make"]()) as one, GatewayServer(env["make"]()) as two:
        assert version(one.url, key) == version(two.url, key) == "heuristic"
        shadow = ["router", "shadow", "minilm-v1", "--route", ROUTE, "--gateway", one.url]
        assert frugal(shadow) == 0
        assert within(10, lambda: (admin(two.url, "/admin/router")["shadow"] or {}).get(
            "router") == "minilm-v1")  # fmt: skip
        version(one.url, key)  # the shadow scores a request on the replica promoting it
        promoted = admin(one.url, "/admin/router/promote", {"route": ROUTE})["live"]["version"]
        assert promoted.startswith("minilm-v1@")
        assert within(10, lambda: version(two.url, key) == promoted)
        assert admin(two.url, "/admin/router")["history"] == ["heuristic"]
        with GatewayServer(env["make"]()) as late:  # started after the promotion
            assert within(10, lambda: version(late.url, key) == promoted)
        with GatewayServer(env["make"](0.3)) as other:  # the route configured otherwise
            time.sleep(3)
            assert version(other.url, key) == "heuristic"
        admin(two.url, "/admin/router/rollback", {"route": ROUTE})  # through the other one
        assert version(two.url, key) == "heuristic"
        assert within(10, lambda: version(one.url, key) == "heuristic")
        assert admin(one.url, "/admin/router")["history"] == []
