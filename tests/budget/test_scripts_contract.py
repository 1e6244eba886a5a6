"""The ledger scripts: the same expectations against MemoryStore (Python twins), one real Redis
and a real three-node Redis Cluster (Lua), so the twins cannot drift from the Lua."""

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from gateway.budget import layout
from gateway.budget.scripts import ADMIT, APPLY, RESERVE, SETTLE
from gateway.store.base import Store


@pytest.fixture(autouse=True)
def _loop(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    global LOOP
    LOOP = loop
    yield


LOOP: asyncio.AbstractEventLoop


def run(store: Store, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
    return LOOP.run_until_complete(store.run(script, keys, args))


def hget(store: Store, key: str) -> dict[str, int]:
    raw = LOOP.run_until_complete(store.hgetall(key))
    return {k.decode(): int(v) for k, v in raw.items()}


def reserve(store: Store, team: str, rid: str, amount: int, limits: list[int],
            now: int = 1_000, ttl: int = 60_000) -> list[int]:  # fmt: skip
    keys = [layout.reservations(team)] + [
        layout.budget(team, None, f"w{i}") for i in range(len(limits))
    ]
    args = [rid, now, now + ttl, amount, 10 * ttl, *limits, *[0] * len(limits)]
    return [int(x) for x in run(store, RESERVE, keys, args)]


def settle(store: Store, team: str, rid: str, actual: int, n: int = 1, prefix: str = "k|m|small",
           tokens: tuple[int, int] = (10, 5)) -> int:  # fmt: skip
    keys = [layout.reservations(team), layout.done(team, rid), f"{layout.tag(team)}:spend:d"]
    keys += [layout.budget(team, None, f"w{i}") for i in range(n)]
    args = [rid, actual, 60_000, n, 60_000, prefix, tokens[0], tokens[1], actual, 7, tokens[1]]
    return int(run(store, SETTLE, keys, args))


def test_reserve_holds_until_the_limit_then_refuses_naming_the_budget(
    store: Store, team: str
) -> None:
    assert reserve(store, team, "a", 60, [100]) == [1, 0, 60]
    assert reserve(store, team, "b", 50, [100]) == [0, 1, 0, 60]
    assert reserve(store, team, "c", 40, [100]) == [1, 0, 100]
    assert hget(store, layout.budget(team, None, "w0")) == {"reserved": 100}


def test_every_budget_is_checked_and_none_is_touched_on_refusal(store: Store, team: str) -> None:
    assert reserve(store, team, "a", 30, [1000, 40]) == [1, 0, 30, 0, 30]
    assert reserve(store, team, "b", 20, [1000, 40]) == [0, 2, 0, 30]
    assert hget(store, layout.budget(team, None, "w0")) == {"reserved": 30}


def test_settle_replaces_the_hold_by_the_actual_cost_exactly_once(store: Store, team: str) -> None:
    reserve(store, team, "a", 60, [100])
    assert settle(store, team, "a", 25) == 1
    assert settle(store, team, "a", 25) == 0  # a second settle changes nothing
    assert hget(store, layout.budget(team, None, "w0")) == {"spent": 25, "reserved": 0}
    ledger = hget(store, f"{layout.tag(team)}:spend:d")
    assert ledger == {"k|m|small|requests": 1, "k|m|small|prompt_tokens": 10,
                      "k|m|small|completion_tokens": 5, "k|m|small|cost_nano": 25,
                      "k|m|small|savings_nano": 7}  # fmt: skip


def test_release_gives_the_hold_back_and_writes_no_ledger(store: Store, team: str) -> None:
    reserve(store, team, "a", 60, [100])
    assert settle(store, team, "a", 0, prefix="") == 1
    assert hget(store, layout.budget(team, None, "w0")) == {"spent": 0, "reserved": 0}
    assert hget(store, f"{layout.tag(team)}:spend:d") == {}
    assert reserve(store, team, "b", 100, [100])[0] == 1


def test_expired_reservations_are_swept_and_a_late_settle_charges_once(
    store: Store, team: str
) -> None:
    reserve(store, team, "crashed", 70, [100], now=1_000, ttl=2_000)
    assert reserve(store, team, "b", 50, [100], now=2_000)[0] == 0  # still held
    assert reserve(store, team, "b", 50, [100], now=5_000) == [1, 0, 50]  # swept at 5 s
    assert settle(store, team, "crashed", 30) == 1  # its replica came back after all
    assert hget(store, layout.budget(team, None, "w0")) == {"spent": 30, "reserved": 50}


def test_a_zero_cost_request_passes_an_exhausted_budget(store: Store, team: str) -> None:
    reserve(store, team, "a", 100, [100])
    settle(store, team, "a", 100)
    assert reserve(store, team, "b", 1, [100])[0] == 0
    assert reserve(store, team, "c", 0, [100]) == [1, 100, 0]


def test_admit_counts_requests_and_tokens_per_minute(store: Store, team: str) -> None:
    rl = layout.rate(team, None, 1)
    bud = layout.budget(team, None, "w0")
    assert run(store, ADMIT, [rl, bud], [1, 10, 120_000, 2, 25]) == [1, 0, 0]
    assert run(store, ADMIT, [rl, bud], [1, 10, 120_000, 2, 25]) == [1, 0, 0]
    assert run(store, ADMIT, [rl, bud], [1, 1, 120_000, 2, 25]) == [0, 1, 1]  # rpm
    assert run(store, ADMIT, [rl, bud], [1, 10, 120_000, -1, 25]) == [0, 1, 2]  # tpm
    assert hget(store, rl) == {"req": 2, "tok": 20}


def test_apply_adds_field_amounts(store: Store, team: str) -> None:
    key = layout.budget(team, None, "w9")
    run(store, APPLY, [key], [0, "spent", 5, "spent", 7])
    assert hget(store, key) == {"spent": 12}
