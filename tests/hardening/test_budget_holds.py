"""Problem 7: a hold whose replica died (reserve, then never settle) expires on its own. Real
Redis, real clock, a 1-second hold: after it, the budget is whole again at the next read,
without any other reservation, and the index of holds is still there to correct it."""

import asyncio
import time

import pytest
import redis

from gateway.budget import layout
from gateway.budget.scripts import ADMIT, RESERVE, SWEEP
from gateway.store.redis_store import RedisStore
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]
TEAM = "holds"
BUDGET = layout.budget(TEAM, None, "m2026-11")
RESV = layout.reservations(TEAM)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _now() -> int:
    return int(time.time() * 1000)


async def test_a_dead_replicas_hold_expires_without_another_reservation(
    own_redis: RedisServer,
) -> None:
    store = RedisStore(own_redis.url)
    month_ttl = 30 * 86_400_000
    now = _now()
    args = ["dead-replica", now, now + 1_000, 700, 2 * 1_000 + 60_000, 1_000, month_ttl]
    assert (await store.run(RESERVE, [RESV, BUDGET], args))[0] == 1  # then the process dies
    admit = [RESV, BUDGET]
    assert await store.run(ADMIT, admit, [0, 0, 120_000, _now()]) == [1, 0, 700]
    with redis.Redis(port=own_redis.port) as r:
        assert r.pttl(RESV) > 86_400_000  # the index outlives the hold and the budget counter
    await asyncio.sleep(1.3)
    assert await store.run(ADMIT, admit, [0, 0, 120_000, _now()]) == [1, 0, 0]  # a read: back
    with redis.Redis(port=own_redis.port) as r:
        assert int(r.hget(BUDGET, "reserved") or 0) == 0
        assert r.exists(RESV) == 0
    await store.close()


async def test_the_admin_read_sweeps_too(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    now = _now()
    await store.run(RESERVE, [RESV, BUDGET], ["gone", now, now + 500, 300, 60_000, 1_000, 0])
    await asyncio.sleep(0.8)
    await store.run(SWEEP, [RESV], [_now()])
    with redis.Redis(port=own_redis.port) as r:
        assert int(r.hget(BUDGET, "reserved") or 0) == 0
    await store.close()
