"""The ledger scripts: the same expectations against MemoryStore (Python twins), one real Redis
and a real three-node Redis Cluster (Lua), so the twins cannot drift from the Lua."""

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from gateway.budget import layout
from gateway.budget.scripts import ADMIT, APPLY, RESERVE, SETTLE, SWEEP
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
           tokens: tuple[int, int] = (10, 5), strict: bool = False) -> int:  # fmt: skip
    keys = [layout.reservations(team), layout.done(team, 0), f"{layout.tag(team)}:spend:d"]
    keys += [layout.budget(team, None, f"w{i}") for i in range(n)]
    args = [rid, actual, 60_000, n, 60_000, prefix, tokens[0], tokens[1], actual, 7, tokens[1],
            "1" if strict else "0"]  # fmt: skip
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
    resv = layout.reservations(team)
    assert run(store, ADMIT, [resv, rl, bud], [1, 10, 120_000, 0, 2, 25]) == [1, 0, 0]
    assert run(store, ADMIT, [resv, rl, bud], [1, 10, 120_000, 0, 2, 25]) == [1, 0, 0]
    assert run(store, ADMIT, [resv, rl, bud], [1, 1, 120_000, 0, 2, 25]) == [0, 1, 1]  # rpm
    assert run(store, ADMIT, [resv, rl, bud], [1, 10, 120_000, 0, -1, 25]) == [0, 1, 2]  # tpm
    assert hget(store, rl) == {"req": 2, "tok": 20}


def test_apply_adds_field_amounts(store: Store, team: str) -> None:
    key = layout.budget(team, None, "w9")
    run(store, APPLY, [key], [0, "spent", 5, "spent", 7])
    assert hget(store, key) == {"spent": 12}


def admit(store: Store, team: str, now: int) -> list[int]:
    keys = [layout.reservations(team), layout.budget(team, None, "w0")]
    return [int(x) for x in run(store, ADMIT, keys, [0, 0, 120_000, now])]


def test_a_hold_expires_on_its_own_seen_by_the_next_read(store: Store, team: str) -> None:
    """Problem 7: a hold whose replica died is given back at its expiry by any read of the
    budget (admit), with no later reservation needed."""
    reserve(store, team, "crashed", 70, [100], now=1_000, ttl=2_000)
    assert admit(store, team, now=2_000) == [1, 0, 70]  # still held
    assert admit(store, team, now=3_000) == [1, 0, 0]  # expired: given back by a read
    assert hget(store, layout.budget(team, None, "w0")) == {"reserved": 0}
    assert LOOP.run_until_complete(store.hgetall(layout.reservations(team))) == {}


def test_the_sweep_script_gives_back_expired_holds(store: Store, team: str) -> None:
    reserve(store, team, "a", 30, [100], now=1_000, ttl=1_000)
    reserve(store, team, "b", 20, [100], now=1_000, ttl=5_000)
    run(store, SWEEP, [layout.reservations(team)], [3_000])
    assert hget(store, layout.budget(team, None, "w0")) == {"reserved": 20}


def test_the_holds_index_outlives_the_budget_keys_it_corrects(store: Store, team: str) -> None:
    """Problem 7: the index of holds must not expire before the counters it must correct."""
    keys = [layout.reservations(team), layout.budget(team, None, "w0")]
    run(store, RESERVE, keys, ["a", 1_000, 3_000, 10, 60_000, 100, 5_000_000])
    pttl = LOOP.run_until_complete(_pttl(store, keys[0]))
    assert pttl > 4_000_000  # at least the budget key's 5_000 s, not the 60 s asked for holds


async def _pttl(store: Store, key: str) -> int:
    if store.kind == "memory":
        return store.data.pttl(key)  # type: ignore[attr-defined]
    r = store._r  # type: ignore[attr-defined]
    if hasattr(r, "call"):
        return int(await r.call("PTTL", key))
    return int(await r.pttl(key))


def test_a_reservation_id_is_held_once(store: Store, team: str) -> None:
    assert reserve(store, team, "a", 30, [100]) == [1, 0, 30]
    assert reserve(store, team, "a", 30, [100]) == [1, 0, 30]  # the same id again: no new hold
    assert hget(store, layout.budget(team, None, "w0")) == {"reserved": 30}


def test_a_replayed_settle_charges_once_and_a_strict_one_needs_its_hold(
    store: Store, team: str
) -> None:
    """Problem 5: a settle that ran but whose reply was lost is replayed: no second charge."""
    reserve(store, team, "a", 60, [100])
    assert settle(store, team, "a", 40) == 1
    assert settle(store, team, "a", 40) == 0  # the journal's replay
    assert settle(store, team, "a", 40, strict=True) == 0
    assert settle(store, team, "never-held", 5, strict=True) == 0  # strict: no hold, no charge
    assert settle(store, team, "local-only", 5) == 1  # held locally during an outage: charged
    assert hget(store, layout.budget(team, None, "w0")) == {"spent": 45, "reserved": 0}
