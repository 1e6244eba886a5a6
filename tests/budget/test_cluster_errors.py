"""Problem 6 on Redis Cluster (redis-py's cluster client): an `OOM` answered by the nodes,
also from inside the budget script, reaches the fail mode instead of a 500."""

import asyncio

import pytest
import redis

from gateway.budget import layout
from gateway.budget.guard import Guard
from gateway.budget.scripts import RESERVE
from gateway.errors import Unavailable
from gateway.store.cluster_store import ClusterStore
from tests.support.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis


def _set_maxmemory(cluster: RedisCluster, value: int) -> None:
    for port in cluster.ports:
        with redis.Redis(port=port) as r:
            r.config_set("maxmemory-policy", "noeviction")
            r.config_set("maxmemory", value)


def test_oom_on_a_cluster_reaches_both_fail_modes(
    redis_cluster: RedisCluster, loop: asyncio.AbstractEventLoop, team: str
) -> None:
    keys = [layout.reservations(team), layout.budget(team, None, "w")]
    args = ["rid", 1_000, 61_000, 10, 120_000, 100, 0]
    _set_maxmemory(redis_cluster, 1)
    try:
        for fail_open in (True, False):
            store = ClusterStore(redis_cluster.url)
            guard = Guard(store, fail_open=fail_open)
            try:
                if fail_open:
                    res, local = loop.run_until_complete(
                        guard.run(RESERVE, keys, args, budget_keys=keys[1:])
                    )
                    assert local and res[0] == 1
                else:
                    with pytest.raises(Unavailable):
                        loop.run_until_complete(guard.run(RESERVE, keys, args))
            finally:
                loop.run_until_complete(store.close())
    finally:
        _set_maxmemory(redis_cluster, 0)
