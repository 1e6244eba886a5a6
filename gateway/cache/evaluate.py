"""Measure the semantic cache on labelled pairs: for each pair, index the first question's
answer in a partition of its own (real Redis vector search), ask the second question, and see
whether the cache would serve it. `paraphrase` pairs should hit; `near_miss` pairs (negations,
changed numbers, names, units, opposites) must not."""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.cache import guard
from gateway.cache.semantic import SemanticIndex

EVAL_SCOPE = "eval"


@dataclass
class Report:
    threshold: float
    paraphrases: int = 0
    near_misses: int = 0
    hits: int = 0  # paraphrases served from the cache
    false_hits: int = 0  # near misses served from the cache (wrong answers)
    false_hits_unguarded: int = 0  # what the similarity threshold alone would have served
    hits_unguarded: int = 0
    false_hit_kinds: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.paraphrases if self.paraphrases else 0.0

    @property
    def false_hit_rate(self) -> float:
        return self.false_hits / self.near_misses if self.near_misses else 0.0

    def as_json(self) -> dict[str, Any]:
        n, p = max(self.near_misses, 1), max(self.paraphrases, 1)
        return {
            "threshold": self.threshold, "pairs": self.paraphrases + self.near_misses,
            "paraphrases": self.paraphrases, "near_misses": self.near_misses,
            "hit_rate": round(self.hit_rate, 4), "false_hit_rate": round(self.false_hit_rate, 4),
            "unguarded_hit_rate": round(self.hits_unguarded / p, 4),
            "unguarded_false_hit_rate": round(self.false_hits_unguarded / n, 4),
            "false_hit_kinds": dict(self.false_hit_kinds), "examples": self.examples,
        }  # fmt: skip


def load_pairs(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if r.get("label") in ("paraphrase", "near_miss")]


async def evaluate(index: SemanticIndex, pairs: list[dict[str, str]], threshold: float) -> Report:
    report = Report(threshold)
    try:
        for n, pair in enumerate(pairs):
            await _one(index, n, pair, report)
    finally:
        await index.purge(EVAL_SCOPE)
    return report


async def _one(index: SemanticIndex, n: int, pair: dict[str, str], report: Report) -> None:
    part = hashlib.sha256(f"eval-{n}".encode()).hexdigest()
    stored, asked = pair["a"], pair["b"]
    await index.add(part, EVAL_SCOPE, stored, await index.embed(stored), b"{}", 600)
    cand = await index.nearest(part, await index.embed(asked))
    near = cand is not None and cand.similarity >= report.threshold
    served = near and cand is not None and guard.reason_to_reject(asked, cand.text) is None
    if pair["label"] == "paraphrase":
        report.paraphrases += 1
        report.hits += served
        report.hits_unguarded += near
    else:
        report.near_misses += 1
        report.false_hits += served
        report.false_hits_unguarded += near
        if served:
            report.false_hit_kinds[pair.get("kind", "?")] += 1
            report.examples.append({"stored": stored, "asked": asked})
