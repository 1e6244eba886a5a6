"""Routing metrics of RouteLLM (arXiv 2406.18665) on per-prompt small/large outcomes.

A router with scores s sends the k highest-scored prompts to the large model. Over k = 0..n:
- quality(k) = mean over prompts of the routed answer's quality;
- PGR(k) = (quality(k) - quality(0)) / (quality(n) - quality(0)), the performance gap recovered;
- APGR = area under PGR over the large share k/n in [0, 1] (trapezoids; random = 0.5);
- CPT(x) = smallest large share with PGR >= x (random ~ x);
- the large share, and the cost relative to all-large, that reach `floor` x quality(n).
Ties in scores are broken by input order (a stable sort), so results are deterministic.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Per-prompt qualities of the two tiers and, optionally, per-call costs."""

    q_small: Array
    q_large: Array
    cost_small: Array | None = None
    cost_large: Array | None = None

    def take(self, index: npt.NDArray[np.intp]) -> "Outcomes":
        return Outcomes(
            self.q_small[index], self.q_large[index],
            None if self.cost_small is None else self.cost_small[index],
            None if self.cost_large is None else self.cost_large[index],
        )  # fmt: skip


def _order(scores: Array) -> npt.NDArray[np.intp]:
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def quality_curve(scores: Array, out: Outcomes) -> Array:
    """quality(k) for k = 0..n (n + 1 values)."""
    gain = (out.q_large - out.q_small)[_order(scores)]
    n = len(gain)
    curve: Array = float(out.q_small.sum()) / n + np.concatenate([[0.0], np.cumsum(gain)]) / n
    return curve


def pgr_curve(scores: Array, out: Outcomes) -> Array:
    q = quality_curve(scores, out)
    gap = q[-1] - q[0]
    if abs(gap) < 1e-12:
        return np.ones_like(q)
    pgr: Array = (q - q[0]) / gap
    return pgr


def apgr(scores: Array, out: Outcomes) -> float:
    pgr = pgr_curve(scores, out)
    n = len(pgr) - 1
    return float((pgr[:-1] + pgr[1:]).sum() / (2.0 * n))


def cpt(scores: Array, out: Outcomes, target: float) -> float:
    """Smallest share of large calls with PGR >= target."""
    pgr = pgr_curve(scores, out)
    hits = np.flatnonzero(pgr >= target - 1e-12)
    return float(hits[0]) / (len(pgr) - 1)


def share_for_quality(scores: Array, out: Outcomes, floor: float = 0.95) -> float:
    """Smallest large share whose quality reaches `floor` x the all-large quality."""
    q = quality_curve(scores, out)
    hits = np.flatnonzero(q >= floor * q[-1] - 1e-12)
    return float(hits[0]) / (len(q) - 1)


def cost_for_quality(scores: Array, out: Outcomes, floor: float = 0.95) -> tuple[float, float]:
    """(USD per 1,000 prompts, fraction of the all-large cost) at `share_for_quality`."""
    if out.cost_small is None or out.cost_large is None:
        raise ValueError("no costs for these outcomes")
    k = round(share_for_quality(scores, out, floor) * len(scores))
    large = np.zeros(len(scores), dtype=bool)
    large[_order(scores)[:k]] = True
    total = float(np.where(large, out.cost_large, out.cost_small).sum())
    return 1000.0 * total / len(scores), total / float(out.cost_large.sum())


def oracle_scores(out: Outcomes) -> Array:
    """Scores of the oracle router: large first where it gains most."""
    return np.asarray(out.q_large - out.q_small, dtype=np.float64)


def random_share_for_quality(out: Outcomes, floor: float = 0.95) -> float:
    """Expected large share random routing needs to reach `floor` x the all-large quality."""
    qs, ql = float(out.q_small.mean()), float(out.q_large.mean())
    if qs >= floor * ql:
        return 0.0
    return min(1.0, (floor * ql - qs) / (ql - qs))
