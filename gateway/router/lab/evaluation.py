"""Per-set evaluation of router scores: RouteLLM's metrics with bootstrap 95% CIs, next to
random and oracle routing.

The bootstrap resamples prompts with replacement (`n_boot` times, fixed seed) and recomputes
every metric of the router on each resample; CIs are the 2.5 / 97.5 percentiles.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from gateway.router.lab import metrics as m

Metric = Callable[[m.Array, m.Outcomes], float]
FLOOR = 0.95


def _metric_table(has_cost: bool) -> dict[str, Metric]:
    table: dict[str, Metric] = {
        "apgr": m.apgr,
        "cpt50": lambda s, o: m.cpt(s, o, 0.5),
        "cpt80": lambda s, o: m.cpt(s, o, 0.8),
        "large_share_at_95": lambda s, o: m.share_for_quality(s, o, FLOOR),
    }
    if has_cost:
        table["usd_per_1k_at_95"] = lambda s, o: m.cost_for_quality(s, o, FLOOR)[0]
        table["cost_fraction_at_95"] = lambda s, o: m.cost_for_quality(s, o, FLOOR)[1]
    return table


def bootstrap(
    scores: m.Array, out: m.Outcomes, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """{metric: {"value", "lo", "hi"}} for the router's scores."""
    table = _metric_table(out.cost_small is not None)
    rng = np.random.default_rng(seed)
    n = len(scores)
    samples: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        sub_scores, sub_out = scores[idx], out.take(idx)
        for name, fn in table.items():
            samples[name].append(fn(sub_scores, sub_out))
    result: dict[str, dict[str, float]] = {}
    for name, fn in table.items():
        lo, hi = np.percentile(samples[name], [2.5, 97.5])
        result[name] = {"value": fn(scores, out), "lo": float(lo), "hi": float(hi)}
    return result


def baselines(out: m.Outcomes) -> dict[str, dict[str, float]]:
    """Random routing (expected values) and oracle routing."""
    share = m.random_share_for_quality(out, FLOOR)
    rand: dict[str, float] = {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8, "large_share_at_95": share}
    oracle_s = m.oracle_scores(out)
    oracle = {name: fn(oracle_s, out) for name, fn in _metric_table(False).items()}
    if out.cost_small is not None and out.cost_large is not None:
        mixed = share * out.cost_large.sum() + (1 - share) * out.cost_small.sum()
        rand["usd_per_1k_at_95"] = float(1000.0 * mixed / len(out.q_small))
        rand["cost_fraction_at_95"] = float(mixed / out.cost_large.sum())
        usd, frac = m.cost_for_quality(oracle_s, out, FLOOR)
        oracle["usd_per_1k_at_95"], oracle["cost_fraction_at_95"] = usd, frac
        rand["usd_per_1k_all_large"] = float(1000.0 * out.cost_large.mean())
    return {"random": rand, "oracle": oracle}


def evaluate_set(scores: m.Array, out: m.Outcomes, n_boot: int = 1000) -> dict[str, Any]:
    """Everything reported for one data set."""
    return {
        "n": len(scores),
        "q_small": float(out.q_small.mean()),
        "q_large": float(out.q_large.mean()),
        "router": bootstrap(scores, out, n_boot),
        **baselines(out),
    }
