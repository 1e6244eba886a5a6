"""Problem 5: a settle that Redis ran but whose reply came after the client's timeout was
settled again locally and reconciled into Redis (spend 80 instead of 40). Settles are now
idempotent by reservation id on every path: Redis, local fallback, reconciliation."""

import asyncio
from typing import Any

import pytest
import redis

from gateway.budget import layout
from gateway.budget.guard import Guard
from gateway.budget.scripts import RESERVE, SETTLE
from gateway.store.redis_store import RedisStore
from tests.support.loopback import Relay
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]
TEAM = "idem"
BUDGET = layout.budget(TEAM, None, "w")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settle_call(rid: str, cost: int) -> tuple[list[str], list[Any]]:
    keys = [layout.reservations(TEAM), layout.done(TEAM, 1), layout.spend(TEAM, _day()), BUDGET]
    return keys, [rid, cost, 60_000, 1, 60_000, "k|m|small", 3, 4, cost, 0, 4, "0"]


def _day() -> Any:
    from datetime import date

    return date(2026, 1, 1)


def _spent(port: int) -> dict[bytes, bytes]:
    with redis.Redis(port=port) as r:
        return r.hgetall(BUDGET)  # type: ignore[return-value]


async def test_a_slow_settle_reply_is_charged_once(own_redis: RedisServer) -> None:
    with Relay(own_redis.port) as proxy:
        store = RedisStore(proxy.url, timeout_s=0.2)
        guard = Guard(store, fail_open=True)
        now = 1_000
        keys = [layout.reservations(TEAM), BUDGET]
        res, local = await guard.run(
            RESERVE, keys, ["r1", now, now + 60_000, 100, 120_000, 1000, 0]
        )
        assert not local and res[0] == 1
        proxy.delay_s = 0.6  # Redis runs the settle; its answer arrives after the timeout
        skeys, sargs = _settle_call("r1", 40)
        _, local = await guard.run(SETTLE, skeys, sargs, tolerant=True, budget_keys=[BUDGET])
        assert local  # accounted locally and journaled, as before
        await asyncio.sleep(0.8)  # the late reply arrives and is dropped
        proxy.delay_s = 0.0
        assert await guard.reconcile()  # the journal's replay is a no-op in Redis
        assert guard.reconciled == 1 and not guard.degraded
        got = _spent(own_redis.port)
        assert int(got[b"spent"]) == 40  # not 80
        assert int(got[b"reserved"]) == 0
        # a settle replayed again (e.g. the reconciler's reply lost too) changes nothing
        assert int(await store.run(SETTLE, skeys, sargs)) == 0
        assert int(_spent(own_redis.port)[b"spent"]) == 40
        await store.close()


async def test_a_reserve_whose_reply_was_lost_is_given_back_by_the_replayed_settle(
    own_redis: RedisServer,
) -> None:
    """The hold reached Redis but the reply did not: the request ran on a local hold; its
    settle, replayed into Redis, releases the orphan hold and charges once."""
    with Relay(own_redis.port) as proxy:
        store = RedisStore(proxy.url, timeout_s=0.2)
        guard = Guard(store, fail_open=True)
        keys = [layout.reservations(TEAM), BUDGET]
        await store.run(RESERVE, keys, ["warm", 1_000, 61_000, 0, 120_000, 1000, 0])  # loaded
        proxy.delay_s = 0.6
        args = ["r2", 1_000, 61_000, 100, 120_000, 1000, 0]
        _, local = await guard.run(RESERVE, keys, args, budget_keys=[BUDGET])
        assert local
        await asyncio.sleep(0.8)
        proxy.delay_s = 0.0
        assert int(_spent(own_redis.port)[b"reserved"]) == 100  # the orphan hold
        skeys, sargs = _settle_call("r2", 30)
        await guard.run(SETTLE, skeys, sargs, local=True, tolerant=True, budget_keys=[BUDGET])
        assert await guard.reconcile()
        got = _spent(own_redis.port)
        assert (int(got[b"spent"]), int(got[b"reserved"])) == (30, 0)
        await store.close()


async def test_a_settle_that_cannot_be_replayed_does_not_block_the_others(
    own_redis: RedisServer,
) -> None:
    store = RedisStore(own_redis.url, timeout_s=1)
    guard = Guard(store, fail_open=True)
    with redis.Redis(port=own_redis.port) as r:
        r.set(BUDGET, "not a hash")  # a bug (here: a key of the wrong type), not an outage
    bad_keys, bad_args = _settle_call("bad", 5)
    await guard.run(SETTLE, bad_keys, bad_args, local=True, tolerant=True, budget_keys=[BUDGET])
    good = layout.budget(TEAM, None, "other")
    keys, args = _settle_call("good", 9)
    keys[3] = good
    await guard.run(SETTLE, keys, args, local=True, tolerant=True, budget_keys=[good])
    assert await guard.reconcile()
    assert guard.replays_dropped == 1 and guard.reconciled == 1 and not guard.journal
    with redis.Redis(port=own_redis.port) as r:
        assert int(r.hget(good, "spent") or 0) == 9
    await store.close()
