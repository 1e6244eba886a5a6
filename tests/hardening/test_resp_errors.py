"""RESP error classes (problem 6): the error replies that mean "this server cannot serve now"
must reach the budget's fail mode (fail_open: accounted in process; fail_closed: 503), never a
500. Written from the RESP2/RESP3 specs' error section and Redis' documented error codes, each
class produced for real where one Redis can produce it (OOM, READONLY, BUSY, NOSCRIPT, WRONGTYPE,
script errors) and by a scripted RESP server otherwise (LOADING, MASTERDOWN, TRYAGAIN,
CLUSTERDOWN, RESP3 blob errors and push frames, a broken frame)."""

import asyncio

import pytest
import redis

from gateway.budget import layout
from gateway.budget.guard import Guard
from gateway.budget.scripts import RESERVE
from gateway.errors import Unavailable
from gateway.store.redis_store import RedisStore
from gateway.store.resp import ReplyError, RespClient, StoreUnavailable, error_code
from tests.hardening.resp_fake import FakeResp
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _reserve_call(team: str = "t") -> tuple[list[str], list[object]]:
    keys = [layout.reservations(team), layout.budget(team, None, "w")]
    return keys, ["rid", 1_000, 61_000, 10, 120_000, 100, 0]


async def _both_fail_modes(url: str) -> None:
    """fail_open answers locally, fail_closed raises the 503: never the raw error."""
    keys, args = _reserve_call()
    for fail_open in (True, False):
        store = RedisStore(url, timeout_s=2)
        guard = Guard(store, fail_open=fail_open)
        try:
            if fail_open:
                result, local = await guard.run(RESERVE, keys, args, budget_keys=keys[1:])
                assert local and result[0] == 1 and guard.degraded
            else:
                with pytest.raises(Unavailable):
                    await guard.run(RESERVE, keys, args, budget_keys=keys[1:])
        finally:
            await store.close()


async def test_oom_from_a_full_redis_reaches_the_fail_mode(own_redis: RedisServer) -> None:
    with redis.Redis(port=own_redis.port) as r:
        r.set("filler", "x" * 1000)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", 1)
    c = RespClient(own_redis.url)
    with pytest.raises(StoreUnavailable, match=r"^OOM"):
        await c.call("SET", "k", "v")
    keys, args = _reserve_call()
    store = RedisStore(own_redis.url)
    with pytest.raises(StoreUnavailable) as inside:  # OOM raised inside a script: ERR ... -OOM
        await store.run(RESERVE, keys, args)
    assert inside.value.code == "OOM"
    await store.close()
    await _both_fail_modes(own_redis.url)
    await c.close()


async def test_readonly_from_a_replica_reaches_the_fail_mode(
    own_redis: RedisServer, redis_server: RedisServer
) -> None:
    with redis.Redis(port=own_redis.port) as r:  # as after a failover: we talk to a replica
        r.replicaof("127.0.0.1", redis_server.port)
    c = RespClient(own_redis.url)
    with pytest.raises(StoreUnavailable, match=r"^READONLY"):
        await c.call("SET", "k", "v")
    await _both_fail_modes(own_redis.url)
    await c.close()


async def test_busy_while_a_script_runs_reaches_the_fail_mode(own_redis: RedisServer) -> None:
    with redis.Redis(port=own_redis.port) as r:
        r.config_set("lua-time-limit", 50)  # BUSY for others once a script runs for 50 ms
    slow = RespClient(own_redis.url, timeout_s=10)
    spin = asyncio.ensure_future(slow.call("EVAL", "local t = redis.call('TIME') "
                                 "while true do end", 0))  # fmt: skip
    await asyncio.sleep(0.3)
    c = RespClient(own_redis.url, timeout_s=2)
    try:
        with pytest.raises(StoreUnavailable, match=r"^BUSY"):
            await c.call("GET", "k")
        await _both_fail_modes(own_redis.url)
    finally:
        await c.call("SCRIPT", "KILL")
        with pytest.raises(ReplyError):
            await spin
        await slow.close()
        await c.close()


async def test_bugs_stay_errors_and_noscript_is_reloaded(redis_server: RedisServer) -> None:
    c = RespClient(redis_server.url)
    await c.call("SET", "resp:str", "v")
    with pytest.raises(ReplyError) as wrong:
        await c.call("HGET", "resp:str", "f")
    assert not isinstance(wrong.value, StoreUnavailable) and wrong.value.code == "WRONGTYPE"
    with pytest.raises(ReplyError) as syntax:
        await c.call("SET", "k")
    assert not isinstance(syntax.value, StoreUnavailable) and syntax.value.code == "ERR"
    with pytest.raises(ReplyError) as script:
        await c.call("EVAL", "return redis.call('HGET', KEYS[1], 'f')", 1, "resp:str")
    assert not isinstance(script.value, StoreUnavailable)
    guard = Guard(RedisStore(redis_server.url), fail_open=True)
    bad = RESERVE.__class__("bad", "return redis.call('NOPE')", RESERVE.local)
    with pytest.raises(ReplyError):  # a bug is not an outage: no silent local accounting
        await guard.run(bad, ["k"], [])
    assert not guard.degraded
    await guard.remote.close()
    store = RedisStore(redis_server.url)
    await store._r.call("SCRIPT", "FLUSH")
    keys, args = _reserve_call("noscript")
    assert (await store.run(RESERVE, keys, args))[0] == 1  # NOSCRIPT: loaded and run again
    await store.close()
    await c.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"-LOADING Redis is loading the dataset in memory\r\n",
        b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
        b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        b"-CLUSTERDOWN The cluster is down\r\n",
        b"-MISCONF Redis is configured to save RDB snapshots, but it's unable to persist\r\n",
        b"-NOREPLICAS Not enough good replicas to write.\r\n",
        b"-NOAUTH Authentication required.\r\n",
        b"-ERR Error running script (call to f_x): @user_script:1: -LOADING Redis is loading\r\n",
    ],
)
async def test_unavailable_classes_from_a_scripted_server(reply: bytes) -> None:
    with FakeResp([], default=reply) as fake:
        c = RespClient(fake.url)
        with pytest.raises(StoreUnavailable) as e:
            await c.call("GET", "k")
        assert isinstance(e.value, ConnectionError)  # what the guard and the cache catch
        with pytest.raises(StoreUnavailable):  # an error reply keeps the connection in step
            await c.call("GET", "k")
        await c.close()
        await _both_fail_modes(fake.url)


async def test_resp3_frames_never_desynchronise_replies() -> None:
    """A RESP3 push frame is nobody's reply; a frame the client cannot parse (here a RESP3
    blob error, which it never asks for) drops the connection as "store unavailable"."""
    push = b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n"
    with FakeResp([push + b"$1\r\na\r\n", b"!10\r\nERR broken\r\n", b"$1\r\nb\r\n"]) as fake:
        c = RespClient(fake.url)
        assert await c.call("GET", "a") == b"a"
        with pytest.raises(StoreUnavailable, match="PROTOCOL"):
            await c.call("GET", "x")
        assert await c.call("GET", "b") == b"b"  # a new connection, in step again
        await c.close()


def test_error_codes_follow_the_spec() -> None:
    assert error_code("WRONGTYPE Operation against a key") == "WRONGTYPE"
    assert error_code("ERR unknown command") == "ERR"
    msg = "ERR Error running script (call to f_1): @user_script:4: @user_script: 4: -OOM x"
    assert error_code(msg) == "OOM"
    assert error_code("BUSY Redis is busy running a script.") == "BUSY"
    assert error_code("Error running script (call to f_1): @user_script:2: -READONLY x") == (
        "READONLY"
    )  # as redis-py words it (the ERR code stripped)
