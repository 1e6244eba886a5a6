"""The in-process cache is bounded: at most `cache.max_entries` entries and `cache.max_bytes`
bytes, least recently used out first, each entry also expiring after its TTL (issue 12,
problem 8: no size cap or LRU on the in-process cache)."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from gateway.cache.local import LocalEntries
from tests.cache.conftest import ADMIN_KEY, DETERMINISTIC, cache_gateway
from tests.support.fake_openai import FakeOpenAI


def test_least_recently_used_entries_go_first() -> None:
    async def scenario() -> None:
        lru = LocalEntries(max_entries=3, max_bytes=10_000)
        for k in "abc":
            await lru.set(k, b"v" * 10, 60)
        assert await lru.get("a") == b"v" * 10  # "a" is now the most recently used
        await lru.set("d", b"v" * 10, 60)
        assert await lru.get("b") is None  # the least recently used went
        assert sorted(await lru.keys("*")) == ["a", "c", "d"]
        assert len(lru) == 3 and lru.evicted == 1 and lru.nbytes == 3 * 11

    asyncio.run(scenario())


def test_the_byte_bound_holds_and_an_entry_too_large_is_not_kept() -> None:
    async def scenario() -> None:
        lru = LocalEntries(max_entries=100, max_bytes=1000)
        for i in range(10):
            await lru.set(f"k{i}", b"x" * 298, 60)  # 300 bytes with its key
        assert lru.nbytes <= 1000 and len(lru) == 3
        assert sorted(await lru.keys("k*")) == ["k7", "k8", "k9"]
        await lru.set("huge", b"x" * 2000, 60)
        assert await lru.get("huge") is None and len(lru) == 3
        await lru.set("k9", b"y", 60)  # replacing an entry frees its old size
        assert lru.nbytes == 600 + 3
        assert await lru.delete("k9", "nope") == 1 and lru.nbytes == 600

    asyncio.run(scenario())


def test_entries_expire() -> None:
    async def scenario() -> None:
        lru = LocalEntries(max_entries=10, max_bytes=10_000)
        await lru.set("a", b"1", 0.05)
        await lru.set("b", b"2", None)
        time.sleep(0.06)
        assert await lru.get("a") is None and await lru.get("b") == b"2"
        assert await lru.keys("*") == ["b"] and lru.nbytes == 2

    asyncio.run(scenario())


def test_a_gateway_without_redis_keeps_at_most_max_entries(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    with cache_gateway(upstream, tmp_path, {"max_entries": 3}) as gw:
        client = gw.client()

        def ask(i: int) -> str:
            raw = client.chat.completions.with_raw_response.create(
                model="small-a", messages=[{"role": "user", "content": f"question {i}"}],
                **DETERMINISTIC,  # type: ignore[arg-type]
            )  # fmt: skip
            return raw.headers["x-frugal-cache"]

        assert [ask(i) for i in range(5)] == ["miss"] * 5
        stats = httpx.get(f"{gw.url}/admin/cache/stats",
                          headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()  # fmt: skip
        assert stats["local"]["entries"] == 3 and stats["local"]["evicted"] == 2
        assert ask(4) == "hit"
        assert ask(0) == "miss"  # evicted: the least recently used


def test_the_bounds_are_validated() -> None:
    from gateway.cache.settings import CacheSettings

    assert CacheSettings().max_entries == 10_000
    assert CacheSettings().max_bytes == 128 * 1024 * 1024
    with pytest.raises(ValueError, match="max_entries"):
        CacheSettings(max_entries=0)
