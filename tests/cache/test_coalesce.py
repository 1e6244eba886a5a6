"""Identical requests in flight at once are coalesced: one upstream call, every waiter gets
the answer. A failed leader's error is not shared: waiters then call upstream themselves."""

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cache.conftest import Gateway, cache_gateway
from tests.support.fake_openai import FakeOpenAI

N = 50


@pytest.fixture(scope="module")
def gw(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    cache = {"teams": {"beta": {"coalesce": False}}}
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), cache) as g:
        yield g


async def burst(gw: Gateway, text: str, team: str = "alpha", stream: bool = False,
                n: int = N) -> list[httpx.Response]:  # fmt: skip
    body: dict[str, Any] = {"model": "small-a", "messages": [{"role": "user", "content": text}],
                            "temperature": 0, "stream": stream}  # fmt: skip
    limits = httpx.Limits(max_connections=n + 5)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30, limits=limits) as c:
        posts = [c.post("/v1/chat/completions", json=body, headers=gw.auth(team))
                 for _ in range(n)]  # fmt: skip
        return list(await asyncio.gather(*posts))


def test_fifty_identical_misses_make_one_upstream_call(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.delay_s = 0.5
    replies = asyncio.run(burst(gw, "coalesce me"))
    assert len(upstream.requests) == 1
    assert all(r.status_code == 200 for r in replies)
    texts = {r.json()["choices"][0]["message"]["content"] for r in replies}
    assert texts == {"Frugal routes each prompt to the cheapest good model."}
    states = sorted(r.headers["x-frugal-cache"] for r in replies)
    assert states.count("miss") == 1 and states.count("hit") == N - 1
    assert sum(r.headers.get("x-frugal-cache-coalesced") == "true" for r in replies) == N - 1


def test_streams_coalesce_too(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.chunk_delay_s = 0.02
    replies = asyncio.run(burst(gw, "coalesce a stream", stream=True, n=10))
    assert len(upstream.requests) == 1
    for r in replies:
        assert r.status_code == 200 and r.text.rstrip().endswith("data: [DONE]")
        assert "cheapest" in r.text


def test_a_failed_leader_does_not_fail_its_waiters(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.delay_s = 0.3
    upstream.script.fail_next = 1
    upstream.script.fail_status = 400  # the leader's request is refused, never retried
    replies = asyncio.run(burst(gw, "leader fails", n=5))
    codes = sorted(r.status_code for r in replies)
    assert codes == [200, 200, 200, 200, 400]
    assert len(upstream.requests) == 5  # errors are not shared: each waiter asked itself


def test_coalescing_off_by_policy(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.delay_s = 0.3
    replies = asyncio.run(burst(gw, "no coalescing", team="beta", n=5))
    assert all(r.status_code == 200 for r in replies)
    assert len(upstream.requests) == 5
