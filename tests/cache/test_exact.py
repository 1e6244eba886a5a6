"""The exact cache through the real gateway and the official client, on the in-process store
and on a real Redis: hits, what makes a miss, what is never stored, controls, scopes, purge."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.cache.conftest import ADMIN_KEY, Gateway, cache_gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import RedisServer

CACHE = {"ttl_s": 60, "teams": {"beta": {"shared_scope": False}}}


@pytest.fixture(scope="module", params=["memory", "redis"])
def gw(
    request: pytest.FixtureRequest,
    fake_openai: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    over: dict[str, Any] = {}
    if request.param == "redis":
        over["redis_url"] = request.getfixturevalue("redis_server").url
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), CACHE, **over) as g:
        yield g


def ask(gw: Gateway, text: str, team: str = "alpha", **kw: Any) -> Any:
    kw.setdefault("temperature", 0)
    return gw.client(team).chat.completions.with_raw_response.create(
        model="small-a", messages=[{"role": "user", "content": text}], **kw
    )


def test_second_identical_request_is_a_free_hit(gw: Gateway, upstream: FakeOpenAI) -> None:
    first = ask(gw, "hit me once")
    second = ask(gw, "hit me once")
    assert len(upstream.requests) == 1
    assert first.headers["x-frugal-cache"] == "miss"
    assert second.headers["x-frugal-cache"] == "hit"
    assert second.headers["x-frugal-cost-usd"] == "0"
    # Recorded as savings worth what the call would have cost.
    assert Decimal(second.headers["x-frugal-cache-saved-usd"]) == Decimal(
        first.headers["x-frugal-cost-usd"]
    )
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content
    assert b.model == "small-a" and b.id != a.id
    assert b.usage is not None and b.usage.completion_tokens == 10


def test_any_answer_changing_parameter_misses(gw: Gateway, upstream: FakeOpenAI) -> None:
    ask(gw, "params")
    for kw in ({"max_tokens": 7}, {"seed": 3}, {"top_p": 0.5}, {"stop": ["."]},
               {"extra_body": {"top_k": 4}}, {"temperature": 0.0001, "seed": 1}):  # fmt: skip
        assert ask(gw, "params", **kw).headers["x-frugal-cache"] == "miss", kw
    assert ask(gw, "params", user="someone-else").headers["x-frugal-cache"] == "hit"


def test_sampling_requests_bypass_unless_seeded(gw: Gateway, upstream: FakeOpenAI) -> None:
    for _ in range(2):
        r = gw.client().chat.completions.with_raw_response.create(
            model="small-a", messages=[{"role": "user", "content": "sample"}]
        )
        assert r.headers["x-frugal-cache"] == "bypass"
        assert r.headers["x-frugal-cache-reason"] == "sampling"
    assert len(upstream.requests) == 2
    assert ask(gw, "sample", temperature=0.9, seed=5).headers["x-frugal-cache"] == "miss"
    assert ask(gw, "sample", temperature=0.9, seed=5).headers["x-frugal-cache"] == "hit"


def test_errors_are_never_stored(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.fail_next = 1
    upstream.script.fail_status = 400
    with pytest.raises(openai.BadRequestError):
        ask(gw, "error first")
    r = ask(gw, "error first")
    assert r.headers["x-frugal-cache"] == "miss" and len(upstream.requests) == 2
    upstream.script.fail_next = 5
    upstream.script.fail_status = 500
    with pytest.raises(openai.APIStatusError):
        ask(gw, "error 500")
    upstream.script.fail_next = 0
    assert ask(gw, "error 500").headers["x-frugal-cache"] == "miss"


def test_truncated_and_aborted_streams_are_never_stored(gw: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script.drop_after_chunks = 4  # the upstream dies mid-stream
    with pytest.raises(openai.APIError):
        list(gw.client().chat.completions.create(
            model="small-a", messages=[{"role": "user", "content": "half"}], temperature=0,
            stream=True))  # fmt: skip
    upstream.script.drop_after_chunks = None
    assert ask(gw, "half").headers["x-frugal-cache"] == "miss"
    # A client that goes away after two chunks: nothing stored either.
    upstream.script.chunk_delay_s = 0.05
    body = {"model": "small-a", "messages": [{"role": "user", "content": "gone"}],
            "temperature": 0, "stream": True}  # fmt: skip
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body,
                      headers=gw.auth(), timeout=10) as r:  # fmt: skip
        lines = r.iter_lines()
        next(lines), next(lines)
    upstream.script.chunk_delay_s = 0
    assert ask(gw, "gone").headers["x-frugal-cache"] == "miss"


def test_controls(gw: Gateway, upstream: FakeOpenAI) -> None:
    ask(gw, "controls")
    h = ask(gw, "controls", extra_headers={"Cache-Control": "no-cache"}).headers
    assert h["x-frugal-cache"] == "bypass" and h["x-frugal-cache-reason"] == "no-cache"
    h = ask(gw, "controls", extra_headers={"x-frugal-cache": "bypass"}).headers
    assert h["x-frugal-cache"] == "bypass"
    assert len(upstream.requests) == 3
    assert ask(gw, "controls").headers["x-frugal-cache"] == "hit"
    # no-store: answered fresh and not stored.
    ask(gw, "never stored", extra_headers={"Cache-Control": "no-store"})
    assert ask(gw, "never stored").headers["x-frugal-cache"] == "miss"
    # no-cache: answered fresh, and the fresh answer is stored.
    ask(gw, "refreshed", extra_headers={"Cache-Control": "no-cache, max-age=0"})
    assert ask(gw, "refreshed").headers["x-frugal-cache"] == "hit"


def test_teams_do_not_share_entries_and_purge_is_per_team(
    gw: Gateway, upstream: FakeOpenAI
) -> None:
    ask(gw, "team secret", team="alpha")
    ask(gw, "team other", team="alpha")
    assert ask(gw, "team secret", team="beta").headers["x-frugal-cache"] == "miss"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.delete(f"{gw.url}/admin/cache/teams/alpha", headers=gw.auth())
    assert r.status_code == 401  # a team key is not the admin key
    r = httpx.delete(f"{gw.url}/admin/cache/teams/alpha", headers=admin)
    assert r.status_code == 200 and r.json()["deleted"]["exact"] >= 2
    assert ask(gw, "team secret", team="alpha").headers["x-frugal-cache"] == "miss"
    assert ask(gw, "team secret", team="beta").headers["x-frugal-cache"] == "hit"
    stats = httpx.get(f"{gw.url}/admin/cache/stats", headers=admin).json()
    assert stats["counts"]["hit"] >= 1 and stats["in_flight"] == 0


def test_tool_calls_and_completions_are_cached(gw: Gateway, upstream: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    for expected in ("miss", "hit"):
        r = ask(gw, "use a tool", tools=tools)
        assert r.headers["x-frugal-cache"] == expected
        calls = r.parse().choices[0].message.tool_calls
        assert calls is not None and calls[0].function.name == "lookup"
    c = gw.client().completions.with_raw_response
    assert c.create(model="small-a", prompt="Once", temperature=0).headers[
        "x-frugal-cache"] == "miss"  # fmt: skip
    r = c.create(model="small-a", prompt="Once", temperature=0)
    assert r.headers["x-frugal-cache"] == "hit"
    assert r.parse().choices[0].text == "Frugal routes each prompt to the cheapest good model."


def test_entries_hold_no_secrets(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory,
    upstream: FakeOpenAI,
) -> None:  # fmt: skip
    r = redis.Redis.from_url(redis_server.url)
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), CACHE,
                       redis_url=redis_server.url) as g:  # fmt: skip
        ask(g, "secret check")
        keys = r.keys("frugal:cache:*")
        assert keys
        blob = b"".join(r.get(k) or b"" for k in keys)
    assert fake_openai.api_key and fake_openai.api_key.encode() not in blob
    for key in g.keys.values():
        assert key.encode() not in blob and key.split("_")[2].encode() not in blob
    assert b"Authorization" not in blob and b"authorization" not in blob


def test_max_entry_bytes_and_disabled_cache(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI
) -> None:
    cache = {"max_entry_bytes": 256, "routes": {"large-a": {"enabled": False}}}
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), cache) as g:
        ask(g, "too big for 256 bytes")
        assert ask(g, "too big for 256 bytes").headers["x-frugal-cache"] == "miss"
        r = g.client().chat.completions.with_raw_response.create(
            model="large-a", messages=[{"role": "user", "content": "x"}], temperature=0
        )
        assert "x-frugal-cache" not in r.headers  # off for this route


def test_a_fallback_answer_is_not_stored_under_the_first_candidate(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI
) -> None:
    # The route's first candidate is the medium model nobody serves; large-a answers instead.
    routes = {"deadfirst": {"tiers": ["medium", "large"], "threshold": 1.0}}
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), {}, routes=routes) as g:
        for _ in range(2):
            r = g.client().chat.completions.with_raw_response.create(
                model="deadfirst", messages=[{"role": "user", "content": "fallback"}],
                temperature=0,
            )  # fmt: skip
            assert r.headers["x-frugal-model"] == "large-a"
            assert r.headers["x-frugal-cache"] == "miss"
