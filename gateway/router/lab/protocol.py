"""The adaptation protocol: leave one public set out, adapt to it with N of its labels.

For each public set S: the prior is the shipped spec trained on the *other* sets (what a
deployment whose traffic the public data never saw starts with); then, for each seed and each
N in `NS` (where S leaves at least `MIN_TEST` rows to test on), N labelled rows of S are drawn
(MT-Bench by question, so both turns of a question fall on one side; the other sets by row),
the adapter is fitted on them (lab/adapt.py, with its own inner CV), and both the adapter and
the prior alone are scored on the rest of S. N = 0 is the prior on all of S.

Figures: APGR per set and N, the mean over seeds; the 95% CI is that of the mean over seeds
under a bootstrap of the test rows (resample b of every seed averaged, then percentiles); the
"delta" compares the adapted and the prior on the same test rows (paired).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.lab import difficulty
from gateway.router.lab import metrics as m
from gateway.router.lab.adapt import adapted_scores, fit_adapter, one_blas_thread
from gateway.router.lab.adapt_variants import fit_variant
from gateway.router.lab.corpus import Corpus
from gateway.router.lab.training import Spec, fit

F64 = npt.NDArray[np.float64]
NS: tuple[int, ...] = (100, 300, 1000)
SEEDS = 5
MIN_TEST = 50
# Sets whose groups are related rows (MT-Bench: a question's two turns) are drawn by group;
# the others by row (MMLU's groups are its 57 subjects: drawing whole subjects would make the
# labels another domain than the test rows).
DRAW_BY_GROUP = frozenset({"mt_bench"})
N_BOOT = 200
SET_WEIGHT_POWER = 0.5
# The shipped spec, fitted on the pair's gain ("mixture"), and the general-difficulty prior
# ("difficulty", the default: one logistic regression on every feature, target
# lab/difficulty.py). Out of domain (N = 0), chosen over the mixture by a leave-one-set-out
# comparison nested inside each held-out set (README, protocol section).
PRIOR_SPEC = Spec(
    "mixture",
    {"gate_C": 1.0, "general_C": 0.001, "expert_C": 0.0003, "expert_min_rows": 200},
)
DIFFICULTY_SPEC = Spec("logreg", {"C": 0.0001})
PRIORS = ("difficulty", "mixture")


@dataclass
class Cell:
    """One (set, N): per seed, the adapted and the prior APGR on the same test rows."""

    adapted: list[float] = field(default_factory=list)
    prior: list[float] = field(default_factory=list)
    boot_adapted: list[F64] = field(default_factory=list)
    boot_delta: list[F64] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        mean_boot = np.mean(np.stack(self.boot_adapted), axis=0)
        delta_boot = np.mean(np.stack(self.boot_delta), axis=0)
        lo, hi = np.percentile(mean_boot, [2.5, 97.5])
        dlo, dhi = np.percentile(delta_boot, [2.5, 97.5])
        return {
            "seeds": len(self.adapted),
            "apgr": float(np.mean(self.adapted)), "lo": float(lo), "hi": float(hi),
            "seed_sd": float(np.std(self.adapted)),
            "prior_same_rows": float(np.mean(self.prior)),
            "delta": float(np.mean(self.adapted) - np.mean(self.prior)),
            "delta_lo": float(dlo), "delta_hi": float(dhi),
            "fit_seconds": float(np.mean(self.seconds)),
            "choices": self.choices,
        }  # fmt: skip


def _boot_apgr(scores: F64, out: m.Outcomes, idx: npt.NDArray[np.intp]) -> F64:
    return np.array([m.apgr(scores[i], out.take(i)) for i in idx])


def draw(groups: Sequence[str], n: int, seed: int) -> npt.NDArray[np.bool_]:
    """About `n` rows (whole groups, in a seeded random order of the groups) marked True."""
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    size: dict[str, int] = {}
    for g in groups:
        size[g] = size.get(g, 0) + 1
    chosen: set[str] = set()
    total = 0
    for g in order:
        if total >= n:
            break
        chosen.add(g)
        total += size[g]
    return np.array([g in chosen for g in groups])


def prior_without(
    corpus: Corpus, held_out: str, kind: str = "difficulty", target: F64 | None = None
) -> Any:
    """The prior trained on every set but `held_out` (`target`: the difficulty targets of
    every corpus row, computed when not given)."""
    rows = ~corpus.mask(held_out)
    sets = corpus.set_of_row[rows]
    counts = {s: int((sets == s).sum()) for s in np.unique(sets)}
    weight = np.array([counts[s] ** -SET_WEIGHT_POWER for s in sets])
    if kind == "mixture":
        return fit(PRIOR_SPEC, corpus.x[rows], corpus.gain[rows], weight, sets)
    if kind != "difficulty":
        raise ValueError(f"unknown prior {kind!r}; known: {', '.join(PRIORS)}")
    y = difficulty.targets(corpus.examples) if target is None else target
    return fit(DIFFICULTY_SPEC, corpus.x[rows], y[rows], weight, sets)


def run(
    corpus: Corpus,
    sets: Sequence[str] | None = None,
    ns: Sequence[int] = NS,
    seeds: int = SEEDS,
    n_boot: int = N_BOOT,
    log: Any = None,
    use_public: bool = False,
    prior_kind: str = "difficulty",
    variant: str | None = None,
) -> dict[str, Any]:
    """The protocol's figures (`variant`: an adapter variant of lab/adapt_variants.py
    instead of the shipped adapter)."""
    started = time.perf_counter()
    result: dict[str, Any] = {"sets": {}, "ns": list(ns), "seeds": seeds, "min_test": MIN_TEST,
                              "public_experts": use_public, "prior": prior_kind,
                              "adapter_variant": variant}  # fmt: skip
    target = difficulty.targets(corpus.examples) if prior_kind == "difficulty" else None
    for name in sets or corpus.sets:
        rows = np.flatnonzero(corpus.mask(name))
        x, gain = corpus.x[rows], corpus.gain[rows]
        groups = [corpus.examples[int(i)].group if name in DRAW_BY_GROUP else str(int(i))
                  for i in rows]  # fmt: skip
        out = corpus.outcomes(corpus.mask(name))
        t0 = time.perf_counter()
        with one_blas_thread():
            prior = prior_without(corpus, name, prior_kind, target)
        prior_scores = prior.predict(x).astype(np.float64)
        public = prior.expert_logits(x).astype(np.float64)
        entry: dict[str, Any] = {"n": len(rows), "prior_fit_seconds": time.perf_counter() - t0}
        rng = np.random.default_rng(0)
        idx_all = [rng.integers(0, len(rows), len(rows)) for _ in range(n_boot)]
        base = _boot_apgr(prior_scores, out, np.array(idx_all))
        lo, hi = np.percentile(base, [2.5, 97.5])
        entry["N=0"] = {"apgr": m.apgr(prior_scores, out), "lo": float(lo), "hi": float(hi)}
        for n in ns:
            if len(rows) - n < MIN_TEST:
                continue
            cell = Cell()
            for seed in range(seeds):
                labelled = draw(groups, n, seed)
                test = np.flatnonzero(~labelled)
                lab = np.flatnonzero(labelled)
                t1 = time.perf_counter()
                with one_blas_thread():
                    if variant is None:
                        adapter, choice = fit_adapter(prior_scores[lab], public[lab], x[lab],
                                                      gain[lab], [groups[i] for i in lab], seed,
                                                      use_public)  # fmt: skip
                        scores = adapted_scores(prior_scores[test], public[test], adapter,
                                                x[test])  # fmt: skip
                        cell.choices.append(choice.describe())
                    else:
                        scorer = fit_variant(variant, prior_scores[lab], x[lab],
                                             out.q_small[lab], out.q_large[lab],
                                             [groups[i] for i in lab], seed, x[test])  # fmt: skip
                        scores = scorer(prior_scores[test], x[test])
                        cell.choices.append({"variant": variant})
                cell.seconds.append(time.perf_counter() - t1)
                sub = out.take(test)
                cell.adapted.append(m.apgr(scores, sub))
                cell.prior.append(m.apgr(prior_scores[test], sub))
                brng = np.random.default_rng(seed)
                idx = brng.integers(0, len(test), (n_boot, len(test)))
                b_ad = _boot_apgr(scores, sub, idx)
                cell.boot_adapted.append(b_ad)
                cell.boot_delta.append(b_ad - _boot_apgr(prior_scores[test], sub, idx))
            entry[f"N={n}"] = cell.summary()
            if log is not None:
                s = entry[f"N={n}"]
                log(f"{name} N={n}: {s['apgr']:.3f} (prior {s['prior_same_rows']:.3f})")
        result["sets"][name] = entry
    result["means"] = means(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def means(result: dict[str, Any]) -> dict[str, Any]:
    """Mean APGR over the sets that have each N, and N = 0 over the same sets."""
    out: dict[str, Any] = {}
    for n in result["ns"]:
        key = f"N={n}"
        having = [s for s, e in result["sets"].items() if key in e]
        if not having:
            continue
        out[key] = {
            "sets": having,
            "apgr": float(np.mean([result["sets"][s][key]["apgr"] for s in having])),
            "N=0": float(np.mean([result["sets"][s]["N=0"]["apgr"] for s in having])),
            "prior_same_rows": float(
                np.mean([result["sets"][s][key]["prior_same_rows"] for s in having])
            ),
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    ns = result["ns"]
    head = "| set (n) | N = 0 | " + " | ".join(f"N = {n}" for n in ns) + " |"
    lines = [head, "|" + "---|" * (2 + len(ns))]
    for name, e in result["sets"].items():
        z = e["N=0"]
        cells = [f"{z['apgr']:.3f} [{z['lo']:.3f}, {z['hi']:.3f}]"]
        for n in ns:
            c = e.get(f"N={n}")
            cells.append(
                "-"
                if c is None
                else f"{c['apgr']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] "
                f"({c['delta']:+.3f} [{c['delta_lo']:+.3f}, {c['delta_hi']:+.3f}])"
            )
        lines.append(f"| {name} ({e['n']:,}) | " + " | ".join(cells) + " |")
    for key, mm in result["means"].items():
        lines.append(f"mean at {key} over {', '.join(mm['sets'])}: {mm['apgr']:.3f} "
                     f"(N = 0 on the same sets {mm['N=0']:.3f}; prior on the same test rows "
                     f"{mm['prior_same_rows']:.3f})")  # fmt: skip
    return "\n".join(lines)
