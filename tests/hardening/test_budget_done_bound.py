"""Problem 8 (the budget's part): a settled reservation used to leave a 24-hour marker key per
request (~17 GB a day at 2,000 req/s). Now its id goes into one set per minute that lives
2 x reservation_ttl_s + 60 s: one key per team and minute, bounded in time."""

import asyncio

import pytest
import redis

from gateway.budget import layout
from gateway.budget.enforcer import done_ttl_ms, new_rid
from gateway.budget.scripts import RESERVE, SETTLE
from gateway.store.redis_store import RedisStore
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]
TEAM = "done"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_settled_ids_share_one_bounded_set_per_minute(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    ttl = done_ttl_ms(900)
    assert ttl == 1_860_000  # 2 x the hold's lifetime + 60 s, not 24 h
    bud = layout.budget(TEAM, None, "m")
    minute = 29_000_000

    async def one() -> None:
        rid = new_rid()
        assert len(rid) == 16
        await store.run(RESERVE, [layout.reservations(TEAM), bud],
                        [rid, 1_000, 61_000, 10, 120_000, 10**9, 0])  # fmt: skip
        keys = [layout.reservations(TEAM), layout.done(TEAM, minute), layout.spend(TEAM, _day()),
                bud]  # fmt: skip
        await store.run(SETTLE, keys, [rid, 7, ttl, 1, 60_000, "", 0, 0, 7, 0, 0, "0"])

    await asyncio.gather(*(one() for _ in range(500)))
    with redis.Redis(port=own_redis.port) as r:
        done_keys = list(r.scan_iter(match=f"{layout.tag(TEAM)}:done*"))
        assert done_keys == [layout.done(TEAM, minute).encode()]  # one key, not 500
        assert r.scard(done_keys[0]) == 500
        assert 0 < r.pttl(done_keys[0]) <= ttl
        assert int(r.hget(bud, "spent") or 0) == 500 * 7
    await store.close()


def _day() -> object:
    from datetime import date

    return date(2026, 1, 1)
