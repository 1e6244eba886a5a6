"""One contract, two stores: every test runs against the in-process store and a real Redis."""

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from gateway.store import Script, Store
from gateway.store.base import Data, ScriptArg
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore
from tests.support.servers import RedisServer

# A small bounded-counter script: add to {tag}:used unless it would pass the limit in ARGV[2];
# record the attempt in the {tag}:log hash. Returns [admitted, used].
BOUNDED_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
if used + amount > limit then return {0, used} end
used = redis.call('INCRBY', KEYS[1], amount)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, used}
"""


def _bounded(data: Data, keys: Sequence[str], args: Sequence[ScriptArg]) -> list[int]:
    used = int(data.get(keys[0]) or b"0")
    amount, limit, ttl = int(args[0]), int(args[1]), int(args[2])
    data.hincrby(keys[1], "attempts", 1)
    if used + amount > limit:
        return [0, used]
    used = data.incrby(keys[0], amount)
    data.pexpire(keys[0], ttl)
    return [1, used]


BOUNDED = Script("test-bounded", BOUNDED_LUA, _bounded)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        s = RedisStore(server.url, timeout_s=5.0)  # a loaded CI box must not time out here
        for k in await s.keys("t:*"):
            await s.delete(k)
    yield s
    await s.close()


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_get_set_delete(store: Store) -> None:
    assert await store.get("t:a") is None
    await store.set("t:a", b"1")
    assert await store.get("t:a") == b"1"
    assert await store.delete("t:a", "t:missing") == 1
    assert await store.get("t:a") is None


async def test_ttl_expires(store: Store) -> None:
    await store.set("t:ttl", b"x", ttl_s=0.05)
    assert await store.get("t:ttl") == b"x"
    await asyncio.sleep(0.12)
    assert await store.get("t:ttl") is None


async def test_incr_sets_ttl_on_create_only(store: Store) -> None:
    assert await store.incr("t:n", 2, ttl_s=0.2) == 2
    assert await store.incr("t:n", 3, ttl_s=100) == 5
    await asyncio.sleep(0.3)
    assert await store.get("t:n") is None  # the first TTL held


async def test_hashes(store: Store) -> None:
    assert await store.hgetall("t:h") == {}
    assert await store.hincrby("t:h", "a", 5) == 5
    assert await store.hincrby("t:h", "a", -2) == 3
    await store.hincrby("t:h", "b", 1)
    assert await store.hgetall("t:h") == {b"a": b"3", b"b": b"1"}


async def test_keys_by_pattern(store: Store) -> None:
    await store.set("t:p:1", b"1")
    await store.set("t:p:2", b"2")
    await store.set("t:q:1", b"3")
    assert sorted(await store.keys("t:p:*")) == ["t:p:1", "t:p:2"]


async def test_script_same_results(store: Store) -> None:
    keys = ["t:{team}:used", "t:{team}:log"]
    assert await store.run(BOUNDED, keys, [4, 10, 60_000]) == [1, 4]
    assert await store.run(BOUNDED, keys, [6, 10, 60_000]) == [1, 10]
    assert await store.run(BOUNDED, keys, [1, 10, 60_000]) == [0, 10]
    assert await store.hgetall(keys[1]) == {b"attempts": b"3"}


async def test_script_is_atomic_under_concurrency(store: Store) -> None:
    keys = ["t:{c}:used", "t:{c}:log"]
    results = await asyncio.gather(*(store.run(BOUNDED, keys, [1, 50, 60_000]) for _ in range(200)))
    assert sum(r[0] for r in results) == 50
    assert await store.get(keys[0]) == b"50"


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_redis_down_ping_is_false() -> None:
    from tests.support.servers import free_port

    s = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    assert await s.ping() is False
    await s.close()
