import asyncio
import uuid
from collections.abc import Iterator

import pytest

from gateway.store.base import Store
from gateway.store.factory import open_store
from gateway.store.memory import MemoryStore
from tests.support.redis_cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["memory", "redis", "cluster"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture
def store(
    store_kind: str, request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop
) -> Iterator[Store]:
    """One store per test, used on the test's own event loop (`loop.run_until_complete`)."""
    if store_kind == "memory":
        yield MemoryStore()
        return
    if store_kind == "redis":
        url = request.getfixturevalue("redis_server").url
    else:
        url = request.getfixturevalue("redis_cluster").url
    s = open_store(url)
    yield s
    loop.run_until_complete(s.close())


@pytest.fixture
def team() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
