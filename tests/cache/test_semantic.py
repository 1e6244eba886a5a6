"""The semantic cache against a real vector-capable Redis (RediSearch): paraphrases hit, near
misses do not, partitions and team opt-in hold, purge reaches it; and the labelled near-miss
/ paraphrase set keeps false hits under 1% at the shipped threshold."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cache.evaluate import evaluate, load_pairs
from gateway.cache.semantic import SemanticIndex
from gateway.cache.settings import SemanticSettings
from gateway.router.embedder import MiniLMEmbedder
from tests.cache.conftest import ADMIN_KEY, Gateway, cache_gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.redis_stack import RedisStackServer
from tests.support.servers import RedisServer

HERE = Path(__file__).parent
# The development set, and a held-out set written after the guard (never tuned on).
PAIRS = [HERE / "semantic_pairs.jsonl", HERE / "semantic_pairs_heldout.jsonl"]
SHIPPED = SemanticSettings().threshold


@pytest.fixture(scope="module")
def gw(
    fake_openai: FakeOpenAI, redis_stack: RedisStackServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:  # fmt: skip
    cache = {"semantic": {"enabled": True}, "teams": {"alpha": {"semantic": True}}}
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), cache,
                       redis_url=redis_stack.url) as g:  # fmt: skip
        yield g


def ask(gw: Gateway, text: str, team: str = "alpha", system: str | None = None, **kw: Any) -> Any:
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": text})
    return gw.client(team).chat.completions.with_raw_response.create(
        model="small-a",
        messages=msgs,
        temperature=0,
        **kw,  # type: ignore[arg-type]
    )


def state(r: Any) -> str:
    return str(r.headers["x-frugal-cache"])


def test_paraphrase_is_a_semantic_hit(gw: Gateway, upstream: FakeOpenAI) -> None:
    first = ask(gw, "How do I reverse a list in Python?")
    assert state(first) == "miss"
    r = ask(gw, "How can I reverse a list in Python?")
    assert state(r) == "semantic-hit" and r.headers["x-frugal-cost-usd"] == "0"
    assert r.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(upstream.requests) == 1
    # The original question is still an exact hit.
    assert state(ask(gw, "How do I reverse a list in Python?")) == "hit"


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I make a cake with eggs?", "How do I make a cake without eggs?"),
        ("Is coffee bad for your health?", "Is coffee not bad for your health?"),
        ("What is 15% of 80?", "What is 15% of 90?"),
        ("What is the capital of Australia?", "What is the capital of Austria?"),
        ("Convert 10 miles to kilometers.", "Convert 10 kilometers to miles."),
        ("How do I encrypt a file with GPG?", "How do I decrypt a file with GPG?"),
    ],
)
def test_near_misses_are_not_served(
    gw: Gateway, upstream: FakeOpenAI, stored: str, asked: str
) -> None:
    ask(gw, stored)
    assert state(ask(gw, asked)) == "miss"


def test_partition_system_prompt_params_and_team(gw: Gateway, upstream: FakeOpenAI) -> None:
    ask(gw, "What is the tallest mountain in Europe?", system="Answer in French.")
    q = "What's the tallest mountain in Europe?"
    assert state(ask(gw, q, system="Answer in German.")) == "miss"
    assert state(ask(gw, q, system="Answer in French.", max_tokens=9)) == "miss"
    assert state(ask(gw, q, system="Answer in French.", team="beta")) == "miss"  # no opt-in
    assert state(ask(gw, q, system="Answer in French.")) == "semantic-hit"


def test_streaming_semantic_hit_replays(gw: Gateway, upstream: FakeOpenAI) -> None:
    ask(gw, "Which planets have rings?")
    chunks = list(gw.client().chat.completions.create(
        model="small-a", messages=[{"role": "user", "content": "Which planets have rings ?"}],
        temperature=0, stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(upstream.requests) == 1


def test_purge_removes_semantic_entries(gw: Gateway, upstream: FakeOpenAI) -> None:
    ask(gw, "Name three primary colours.")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    deleted = httpx.delete(f"{gw.url}/admin/cache/teams/alpha", headers=admin).json()["deleted"]
    assert deleted["semantic"] >= 1 and deleted["exact"] >= 1
    assert state(ask(gw, "Name three primary colors.")) == "miss"


def test_labelled_set_false_hits_under_one_percent(redis_stack: RedisStackServer) -> None:
    pairs = [p for f in PAIRS for p in load_pairs(f)]
    assert len(pairs) >= 150
    cfg = SemanticSettings(enabled=True, index="frugal-eval-test")

    async def run() -> dict[str, Any]:
        index = await SemanticIndex.open(redis_stack.url, cfg, MiniLMEmbedder())
        try:
            return (await evaluate(index, pairs, SHIPPED)).as_json()
        finally:
            await index.close()

    report = asyncio.run(run())
    assert report["false_hit_rate"] < 0.01, report["examples"]
    assert report["hit_rate"] >= 0.85, report  # the guard must not make the cache useless
    assert report["unguarded_false_hit_rate"] > 0.2  # the set really is hard without the guard


def test_without_redisearch_semantic_is_unavailable_and_exact_works(
    fake_openai: FakeOpenAI, upstream: FakeOpenAI, redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="frugal.cache")
    cache = {"semantic": {"enabled": True, "default": True}}
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), cache,
                       redis_url=redis_server.url) as g:  # fmt: skip
        ask(g, "plain redis")
        assert state(ask(g, "plain redis")) == "hit"
        assert state(ask(g, "plain redis ?")) == "miss"
    assert "semantic cache unavailable" in caplog.text
    assert "no RediSearch" in caplog.text
