"""Latency of the learned router's `score()` at batch 1 (one prompt per call, one thread).

Prompts are realistic: public-set questions (MMLU, GSM8K, MT-Bench, RouterBench few-shot
prompts), chat conversations with system prompts and tools, and a few very long inputs.
Inputs are truncated: the last user turn without its few-shot preamble, head 900 + tail 300
characters when longer, then at most 256 MiniLM tokens. Prints p50/p95/p99 in milliseconds.

    .venv/bin/python bench/router_latency.py [--n 300] [--router default]
"""

import argparse
import random
import statistics
import time
from typing import Any

from gateway.router import load_scorer
from gateway.router.lab import public_data


def prompts(n: int) -> list[tuple[list[dict[str, Any]], bool]]:
    rng = random.Random(0)
    pool: list[tuple[list[dict[str, Any]], bool]] = []
    try:
        for name in public_data.DATASETS:
            examples = public_data.load(name)
            for ex in rng.sample(examples, min(len(examples), n // 6 + 1)):
                pool.append(([dict(m) for m in ex.messages], False))
    except FileNotFoundError:
        pass
    chat = [
        {"role": "system", "content": "You are a helpful assistant for an e-commerce site. " * 8},
        {"role": "user", "content": "Where is my order #1234?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "content": '{"status": "shipped"}'},
        {"role": "user", "content": "Can you also explain the return policy step by step?"},
    ]
    pool += [(chat, True)] * max(1, n // 20)
    pool += [([{"role": "user", "content": "Summarise this:\n" + "lorem ipsum " * 3000}], False)]
    rng.shuffle(pool)
    return (pool * (n // max(len(pool), 1) + 1))[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--router", default="default")
    args = parser.parse_args()
    scorer = load_scorer(args.router)
    items = prompts(args.n)
    for messages, tools in items[:20]:
        scorer.score(messages, tools)  # warm-up
    times = []
    for messages, tools in items:
        start = time.perf_counter()
        scorer.score(messages, tools)
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=100)
    print(
        f"router={scorer.name} n={len(times)} batch=1 p50={q[49]:.2f} ms "
        f"p95={q[94]:.2f} ms p99={q[98]:.2f} ms mean={statistics.mean(times):.2f} ms"
    )


if __name__ == "__main__":
    main()
