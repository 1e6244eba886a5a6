"""The pipelined Redis client against real Redis servers: replies reach their own callers,
scripts survive a SCRIPT FLUSH, a stalled or dead server fails fast and the client recovers,
and passwords and database numbers in the URL are honoured."""

import asyncio
import os
import signal

import pytest
import redis

from gateway.store.base import Script
from gateway.store.redis_store import RedisStore
from gateway.store.resp import Endpoint, ReplyError, RespClient
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

ECHO = Script("test-echo", "return {KEYS[1], ARGV[1]}", lambda d, k, a: [k[0], a[0]])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _pid(server: RedisServer) -> int:
    assert server.process is not None
    return server.process.proc.pid


async def test_many_concurrent_commands_each_get_their_own_reply(
    redis_server: RedisServer,
) -> None:
    c = RespClient(redis_server.url)
    await asyncio.gather(*(c.call("SET", f"resp:{i}", f"v{i}") for i in range(300)))
    got = await asyncio.gather(*(c.call("GET", f"resp:{i}") for i in range(300)))
    assert got == [f"v{i}".encode() for i in range(300)]
    with pytest.raises(ReplyError, match="WRONGTYPE"):
        await c.call("HGET", "resp:1", "f")
    assert await c.call("GET", "resp:2") == b"v2"  # an error reply does not shift the order
    await c.close()


async def test_a_script_runs_again_after_the_server_forgets_it(redis_server: RedisServer) -> None:
    s = RedisStore(redis_server.url)
    assert await s.run(ECHO, ["k"], ["a"]) == [b"k", b"a"]
    await s._r.call("SCRIPT", "FLUSH")
    assert await s.run(ECHO, ["k"], ["b"]) == [b"k", b"b"]
    await s.close()


async def test_a_stalled_server_times_out_and_the_client_recovers(own_redis: RedisServer) -> None:
    c = RespClient(own_redis.url, timeout_s=0.2)
    assert await c.call("PING") == b"PONG"
    os.kill(_pid(own_redis), signal.SIGSTOP)
    try:
        with pytest.raises(TimeoutError):
            await c.call("PING")
    finally:
        os.kill(_pid(own_redis), signal.SIGCONT)
    assert await c.call("PING") == b"PONG"  # a new connection, nothing out of order
    assert await c.call("ECHO", "after") == b"after"
    await c.close()


async def test_a_dead_server_is_a_connection_error_until_it_returns(
    own_redis: RedisServer,
) -> None:
    c = RespClient(own_redis.url, timeout_s=0.5)
    await c.call("SET", "k", "1")
    assert own_redis.process is not None
    own_redis.process.proc.kill()
    own_redis.process.proc.wait()
    with pytest.raises(OSError):  # ConnectionError: the budget guard's "store down"
        await c.call("GET", "k")
    with pytest.raises(OSError):
        await c.call("GET", "k")
    back = RedisServer(port=own_redis.port).start()
    try:
        assert await c.call("PING") == b"PONG"
    finally:
        await c.close()
        back.stop()


async def test_password_and_database_from_the_url() -> None:
    server = RedisServer(extra=["--requirepass", "s3cret"]).start()
    try:
        c = RespClient(f"redis://:s3cret@127.0.0.1:{server.port}/3")
        await c.call("SET", "where", "db3")
        await c.close()
        r = redis.Redis(host="127.0.0.1", port=server.port, password="s3cret", db=3)
        assert r.get("where") == b"db3"
        r.close()
        with pytest.raises(ReplyError, match=r"NOAUTH|WRONGPASS|AUTH"):
            await RespClient(f"redis://127.0.0.1:{server.port}/0").call("GET", "where")
    finally:
        server.stop()


def test_url_forms() -> None:
    assert Endpoint.parse("redis://h:1/2") == Endpoint(host="h", port=1, db=2)
    assert Endpoint.parse("rediss://u:p%40ss@h").password == "p@ss"
    assert Endpoint.parse("rediss://u:p@h").tls
    assert Endpoint.parse("unix:///tmp/r.sock?db=4") == Endpoint(path="/tmp/r.sock", db=4)
    with pytest.raises(ValueError, match="scheme"):
        Endpoint.parse("http://h")
