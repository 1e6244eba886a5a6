"""Which public prior transfers to a prompt set it never saw (the protocol's N = 0 column).

`frugal router protocol --priors` fits each candidate on five public sets, scores the sixth
(APGR), for every set in turn, and then measures the choice itself honestly: for each
held-out set S, the candidate with the best mean N = 0 over the other sets T (each fitted
without S *and* T) is picked, then fitted without S and scored on S ("nested selection").
With `--in-domain` it also prints the candidates' plain 5-fold out-of-fold APGR on all six
sets (the folds of crossval.py), the figure the shipped router is judged on in-domain.

Candidates (training.Spec; targets: "gain" = the pair's gain, "difficulty" = lab/difficulty):
- mixture: the shipped spec on the gain (the protocol's prior before);
- mixture, experts averaged: its experts' standardised logits averaged instead of gated;
- single (gain) / (small fails) / difficulty C: one logistic regression on every feature;
- mixture (difficulty): the shipped spec on the difficulty target;
- mixture + difficulty: every expert's logit plus the difficulty model's (`HYBRID_WEIGHT`),
  which is one linear expert per class again (the serving format unchanged): the spec
  param `difficulty_weight` of training.fit, fitted and scored as served.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.lab import difficulty
from gateway.router.lab import metrics as m
from gateway.router.lab.corpus import Corpus
from gateway.router.lab.training import Spec, fit, fit_dense

F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
# (train rows, test rows) -> scores of the test rows (only their order matters)
Candidate = Callable[[Mask, Mask], F64]
MIXTURE = Spec(
    "mixture", {"gate_C": 1.0, "general_C": 0.001, "expert_C": 0.0003, "expert_min_rows": 200}
)
SET_WEIGHT_POWER = 0.5
HYBRID_WEIGHT = 1.0
HYBRID = Spec(
    "mixture", {**MIXTURE.params, "difficulty_weight": HYBRID_WEIGHT, "difficulty_C": 1e-4}
)  # `frugal router train --difficulty-weight 1`: the artifact minilm-dq8-g
NESTED = ("mixture", "single (gain)", "single (small fails)", "difficulty C=3e-05",
          "difficulty C=0.0001", "difficulty C=0.0003")  # fmt: skip


def _weights(sets: npt.NDArray[np.str_]) -> F64:
    _, inverse, counts = np.unique(sets, return_inverse=True, return_counts=True)
    out: F64 = np.asarray(counts[inverse], np.float64) ** -SET_WEIGHT_POWER
    return out


def candidates(corpus: Corpus) -> dict[str, Candidate]:
    x, gain, sets = corpus.x, corpus.gain, corpus.set_of_row
    hard = difficulty.targets(corpus.examples)
    small_fails = 1.0 - np.array([e.q_small for e in corpus.examples])

    def mixture(target: F64) -> Candidate:
        def run(tr: Mask, te: Mask) -> F64:
            model = fit(MIXTURE, x[tr], target[tr], _weights(sets[tr]), sets[tr])
            return model.predict(x[te]).astype(np.float64)

        return run

    def single(target: F64, c: float, columns: str = "all") -> Candidate:
        def run(tr: Mask, te: Mask) -> F64:
            spec = Spec("logreg", {"C": c}, columns)
            model = fit_dense(spec, x[tr], target[tr], _weights(sets[tr]), sets[tr])
            return model.logits(x[te]).astype(np.float64)

        return run

    def averaged(tr: Mask, te: Mask) -> F64:
        model = fit(MIXTURE, x[tr], gain[tr], _weights(sets[tr]), sets[tr])
        logits = model.expert_logits(x[te]).astype(np.float64)
        out: F64 = ((logits - logits.mean(0)) / np.maximum(logits.std(0), 1e-9)).mean(1)
        return out

    def hybrid(tr: Mask, te: Mask) -> F64:
        # the served format: training.fit folds the difficulty logit into every expert
        model = fit(HYBRID, x[tr], gain[tr], _weights(sets[tr]), sets[tr], hard[tr])
        return model.predict(x[te]).astype(np.float64)

    out: dict[str, Candidate] = {
        "mixture": mixture(gain),
        "mixture, experts averaged": averaged,
        "single (gain)": single(gain, 3e-4),
        "single (small fails)": single(small_fails, 3e-4),
        "structural only (gain)": single(gain, 0.01, "structural"),
    }
    for c in (3e-5, 1e-4, 3e-4):
        out[f"difficulty C={c:g}"] = single(hard, c)
    out["mixture (difficulty)"] = mixture(hard)
    out[f"mixture + {HYBRID_WEIGHT:g} x difficulty"] = hybrid
    return out


def _apgr(corpus: Corpus, scores: F64, rows: Mask) -> float:
    return m.apgr(np.asarray(scores, np.float64), corpus.outcomes(rows))


def out_of_domain(
    corpus: Corpus, names: tuple[str, ...] | None = None, n_boot: int = 200
) -> dict[str, Any]:
    """N = 0 of each candidate on each set; the 95% CI of its mean over the sets minus the
    mixture's (paired: the same bootstrap resample of every set's rows for both); and the
    nested selection among `NESTED`."""
    cands = candidates(corpus)
    sets = corpus.sets
    table: dict[str, dict[str, float]] = {}
    scores: dict[str, dict[str, F64]] = {}
    for name in names or tuple(cands):
        table[name], scores[name] = {}, {}
        for s in sets:
            held = corpus.mask(s)
            scores[name][s] = cands[name](~held, held)
            table[name][s] = _apgr(corpus, scores[name][s], held)
    rng = np.random.default_rng(0)
    resamples = {s: rng.integers(0, int(corpus.mask(s).sum()), (n_boot, int(corpus.mask(s).sum())))
                 for s in sets}  # fmt: skip
    versus: dict[str, list[float]] = {}
    for name in scores:
        diffs = np.zeros(n_boot)
        for s in sets:
            out = corpus.outcomes(corpus.mask(s))
            for b, idx in enumerate(resamples[s]):
                sub = out.take(idx)
                diffs[b] += m.apgr(scores[name][s][idx], sub) - m.apgr(
                    scores["mixture"][s][idx], sub
                )
        lo, hi = np.percentile(diffs / len(sets), [2.5, 97.5])
        versus[name] = [float(lo), float(hi)]
    nested: dict[str, Any] = {}
    for s in sets:
        held = corpus.mask(s)
        inner = {}
        for name in NESTED:
            vals = []
            for t in sets:
                if t == s:
                    continue
                other = corpus.mask(t)
                vals.append(_apgr(corpus, cands[name](~held & ~other, other), other))
            inner[name] = float(np.mean(vals))
        pick = max(inner, key=lambda k: inner[k])
        nested[s] = {"pick": pick, "apgr": _apgr(corpus, cands[pick](~held, held), held)}
    return {"sets": sets, "n0": table, "versus_mixture": versus, "nested": nested}


def in_domain(
    corpus: Corpus, names: tuple[str, ...], n_boot: int = 200
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]]]:
    """Plain 5-fold out-of-fold APGR per set (crossval.py's folds) of the named candidates,
    and each one's paired difference from the first (the mixture) per set: [diff, lo, hi]."""
    cands = candidates(corpus)
    table: dict[str, dict[str, float]] = {}
    scores: dict[str, F64] = {}
    for name in names:
        scores[name] = np.zeros(len(corpus.x))
        for fold in np.unique(corpus.folds):
            test = corpus.folds == fold
            scores[name][test] = cands[name](~test, test)
        table[name] = {s: _apgr(corpus, scores[name][corpus.mask(s)], corpus.mask(s))
                       for s in corpus.sets}  # fmt: skip
    rng = np.random.default_rng(0)
    diffs: dict[str, dict[str, list[float]]] = {name: {} for name in names[1:]}
    for s in corpus.sets:
        rows = corpus.mask(s)
        out = corpus.outcomes(rows)
        idx = rng.integers(0, int(rows.sum()), (n_boot, int(rows.sum())))
        for name in names[1:]:
            a, b = scores[name][rows], scores[names[0]][rows]
            boot = [m.apgr(a[i], out.take(i)) - m.apgr(b[i], out.take(i)) for i in idx]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            diffs[name][s] = [table[name][s] - table[names[0]][s], float(lo), float(hi)]
    return table, diffs


def format_diffs(sets: list[str], diffs: dict[str, dict[str, list[float]]]) -> str:
    lines = ["| minus the mixture | " + " | ".join(sets) + " |", "|" + "---|" * (len(sets) + 1)]
    for name, per_set in diffs.items():
        cells = [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in (per_set[s] for s in sets)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_rows(
    sets: list[str], rows: dict[str, dict[str, float]], versus: dict[str, list[float]] | None = None
) -> str:
    head = "| prior | " + " | ".join(sets) + " | mean |" + (" vs mixture |" if versus else "")
    lines = [head, "|" + "---|" * (len(sets) + 2 + bool(versus))]
    mixture = np.mean([rows["mixture"][s] for s in sets]) if "mixture" in rows else 0.0
    for name, per_set in rows.items():
        vals = [per_set[s] for s in sets]
        cells = " | ".join(f"{v:.3f}" for v in vals)
        line = f"| {name} | {cells} | {np.mean(vals):.3f} |"
        if versus:
            lo, hi = versus[name]
            line += f" {np.mean(vals) - mixture:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
        lines.append(line)
    return "\n".join(lines)


def format_nested(result: dict[str, Any]) -> str:
    nested = result["nested"]
    parts = [f"{s}: {v['apgr']:.3f} ({v['pick']})" for s, v in nested.items()]
    mean = np.mean([v["apgr"] for v in nested.values()])
    return "nested selection: " + "; ".join(parts) + f"; mean {mean:.3f}"
