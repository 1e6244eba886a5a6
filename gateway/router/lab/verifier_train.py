"""Train and evaluate the answer verifier (`gateway/router/verifier.py`) on the public rows that
record the small model's answers (`verifier_data.py`), and compare the cascade it drives with
the prompt-only router and with the hybrid of both, on the same rows and folds.

Every figure is out-of-fold: the router's fixed 5 folds (`crossval.assign_folds`); each fold's
model sees only the other folds; the regularisation C is chosen inside the training folds
(nested). Models: logistic regression on standardised signals, positives and negatives
balanced within each set, each set weighted sqrt(n). Target: the large answer is better
(clip(q_large - q_small, 0, 1), graded on MT-Bench).

Schemes compared (each ranks the rows; the k highest get the large tier):
- prompt: the prompt-only router's view (the prompt's MiniLM embedding + the router's structural
  features, the same learner; the shipped router's own figures are in the README);
- cascade: the verifier's score of (prompt, small answer); the small call is always paid;
- hybrid: the prompt router sends its top `skip` share straight to large (no small call), the
  verifier ranks the rest; `skip` is chosen inside the training folds;
- mix: both scores at once, w x z(prompt logit) + (1 - w) x z(verifier logit) (z: standardised
  over the training rows), one w chosen inside the training folds on inner out-of-fold scores;
  the small call is always paid. Measured here with the lab's prompt view; the mix the gateway
  serves (`cascade.mix`) is fitted for the shipped router by `served_mix` (lab/verifier_mix.py)
  and recorded in the artifact's `meta.mix`.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.artifact import DEFAULT_NAME
from gateway.router.conversation import parse
from gateway.router.embedder import MiniLMEmbedder
from gateway.router.features import structural_features
from gateway.router.featurize import embedding_text
from gateway.router.lab.calibrate import calibrate
from gateway.router.lab.crossval import assign_folds
from gateway.router.lab.embeddings import embed_cached
from gateway.router.lab.metrics import Outcomes, apgr, cpt, quality_curve
from gateway.router.lab.verifier_data import VERIFIER_SETS, AnswerRow, load_all
from gateway.router.resources import ARTIFACTS_DIR
from gateway.router.verifier import (
    EMBEDDING_GROUP,
    GROUPS,
    KINDS,
    VerifierModel,
    signals,
    with_interactions,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
C_GRID = (0.1, 1.0, 10.0, 100.0)  # signals only (a few hundred columns with interactions)
C_GRID_WIDE = (0.003, 0.03)  # with a 384-d embedding
SKIP_GRID = (0.0, 0.05, 0.1, 0.2, 0.3)
MIX_GRID = tuple(round(0.05 * i, 2) for i in range(21))
FLOOR = 0.95
SHIPPED_GROUPS = ("length", "hedging", "format", "logprob", "agreement", "math_check",
                  "choice_check", "code_check")  # fmt: skip
MAIN_SCHEMES = ("prompt", "cascade", "cascade+embedding", "hybrid", "mix")


@dataclass(frozen=True, slots=True)
class Matrix:
    rows: Sequence[AnswerRow]
    scalars: F64  # one column per name in `columns`
    columns: tuple[str, ...]
    answer_emb: F64  # [answer embedding (384), cosine with the prompt]
    prompt_x: F64  # prompt embedding (384) + structural features: the prompt-only view
    folds: I64
    sets: npt.NDArray[np.str_]
    target: F64

    def outcomes(self, mask: npt.NDArray[np.bool_]) -> Outcomes:
        e = [r.example for r, m in zip(self.rows, mask, strict=True) if m]
        return Outcomes(np.array([x.q_small for x in e]), np.array([x.q_large for x in e]),
                        np.array([x.cost_small or 0.0 for x in e]),
                        np.array([x.cost_large or 0.0 for x in e]))  # fmt: skip

    def features(self, groups: Sequence[str], interactions: bool = False) -> F64:
        names = signal_columns(groups)
        x = self.scalars[:, [self.columns.index(c) for c in names]]
        parts = [with_interactions(x, names) if interactions else x]
        if EMBEDDING_GROUP in groups:
            parts.append(self.answer_emb)
        return np.concatenate(parts, axis=1)


def signal_columns(groups: Sequence[str]) -> tuple[str, ...]:
    """The scalar signals of `groups` in GROUPS order (the kinds always, for interactions)."""
    wanted = {c for g in groups if g in GROUPS for c in GROUPS[g]} | set(KINDS)
    return tuple(c for g in GROUPS.values() for c in g if c in wanted)


def build(rows: Sequence[AnswerRow], use_cache: bool = True, embed: bool = True) -> Matrix:
    """Signals, embeddings (zeros with `embed=False`: the shipped verifier needs none), folds."""
    columns = tuple(c for g in GROUPS.values() for c in g)
    sig = [signals(r.example.messages, r.answer, r.logprobs, r.second) for r in rows]
    scalars = np.array([[s[c] for c in columns] for s in sig], dtype=np.float64)
    convs = [parse(r.example.messages) for r in rows]
    prompt = answer = np.zeros((len(rows), 384), dtype=np.float32)
    if embed:
        embedder = MiniLMEmbedder(threads=2)
        prompt = embed_cached([embedding_text(c) for c in convs], embedder, use_cache)
        answer = embed_cached([r.answer for r in rows], embedder, use_cache)
    cosine = (prompt * answer).sum(axis=1, keepdims=True)
    structural = np.stack([structural_features(c) for c in convs])
    examples = [r.example for r in rows]
    return Matrix(
        rows, scalars, columns,
        np.concatenate([answer, cosine], axis=1).astype(np.float64),
        np.concatenate([prompt, structural], axis=1).astype(np.float64),
        assign_folds(examples), np.array([e.dataset for e in examples]),
        np.clip(np.array([e.gain for e in examples], dtype=np.float64), 0.0, 1.0),
    )  # fmt: skip


def _weights(target: F64, sets: npt.NDArray[np.str_]) -> tuple[F64, F64, F64]:
    """(x-row index, label, weight) rows: each row as a positive with weight t and a negative
    with weight 1 - t; classes balanced within a set; a set weighs sqrt(n)."""
    idx = np.concatenate([np.arange(len(target))] * 2)
    label = np.concatenate([np.ones(len(target)), np.zeros(len(target))])
    w = np.concatenate([target, 1.0 - target])
    for name in np.unique(sets):
        m = np.concatenate([sets == name] * 2)
        n = float((sets == name).sum())
        for cls in (0.0, 1.0):
            c = m & (label == cls)
            total = w[c].sum()
            if total > 0:
                w[c] *= 0.5 * np.sqrt(n) / total
    keep = w > 0
    return idx[keep].astype(np.float64), label[keep], w[keep]


@dataclass(frozen=True, slots=True)
class Fitted:
    mean: F64
    scale: F64
    coef: F64
    bias: float

    def predict(self, x: F64) -> F64:
        z = ((x - self.mean) / self.scale) @ self.coef + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def fit(x: F64, target: F64, sets: npt.NDArray[np.str_], c: float) -> Fitted:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    idx, label, w = _weights(target, sets)
    rows = idx.astype(np.int64)
    model = LogisticRegression(C=c, max_iter=500, tol=1e-3)
    model.fit((x[rows] - mean) / scale, label, sample_weight=w)
    return Fitted(mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def _mean_apgr(scores: F64, mx: Matrix, mask: npt.NDArray[np.bool_]) -> float:
    """Mean APGR over the sets present in `mask` (what nested CV maximises)."""
    values = []
    for name in np.unique(mx.sets[mask]):
        m = mask & (mx.sets == name)
        out = mx.outcomes(m)
        if abs(out.q_large.mean() - out.q_small.mean()) > 1e-9:
            values.append(apgr(scores[m], out))
    return float(np.mean(values)) if values else 0.0


def out_of_fold(x: F64, mx: Matrix, c_grid: Sequence[float] = C_GRID) -> tuple[F64, list[float]]:
    """Out-of-fold scores; C chosen per outer fold by inner CV on its training folds."""
    scores = np.zeros(len(x))
    chosen = []
    for fold in np.unique(mx.folds):
        train = mx.folds != fold
        best, best_c = -1.0, c_grid[0]
        for c in c_grid if len(c_grid) > 1 else ():
            inner = np.zeros(len(x))
            for f in np.unique(mx.folds[train]):
                tr = train & (mx.folds != f)
                te = train & (mx.folds == f)
                inner[te] = fit(x[tr], mx.target[tr], mx.sets[tr], c).predict(x[te])
            value = _mean_apgr(inner, mx, train)
            if value > best:
                best, best_c = value, c
        chosen.append(best_c)
        model = fit(x[train], mx.target[train], mx.sets[train], best_c)
        scores[~train] = model.predict(x[~train])
    return scores, chosen


def hybrid_scores(prompt: F64, cascade: F64, mask: npt.NDArray[np.bool_], skip: float) -> F64:
    """Within `mask`'s rows per set: the top `skip` share by prompt score first, then the rest
    by the verifier's score. Returns (ranking scores, skipped flags packed as score >= 2)."""
    out = np.asarray(cascade, dtype=np.float64).copy()
    if skip <= 0:
        return out
    idx = np.flatnonzero(mask)
    k = round(skip * len(idx))
    if k:
        top = idx[np.argsort(-prompt[idx], kind="stable")[:k]]
        out[top] = 2.0 + prompt[top]
    return out


def hybrid_oof(prompt: F64, cascade: F64, mx: Matrix) -> tuple[F64, list[float]]:
    """Hybrid with the skip share chosen per outer fold on the training folds (per set)."""
    scores = cascade.copy()
    chosen = []
    for fold in np.unique(mx.folds):
        train = mx.folds != fold
        best, best_skip = -1.0, 0.0
        for skip in SKIP_GRID:
            trial = cascade.copy()
            for name in np.unique(mx.sets):
                trial = hybrid_scores(prompt, trial, train & (mx.sets == name), skip)
            value = _mean_apgr(trial, mx, train)
            if value > best + 1e-9:
                best, best_skip = value, skip
        chosen.append(best_skip)
        for name in np.unique(mx.sets):
            scores = hybrid_scores(prompt, scores, (~train) & (mx.sets == name), best_skip)
    return scores, chosen


def _logit(p: F64) -> F64:
    p = np.clip(p, 1e-9, 1.0 - 1e-9)
    return np.asarray(np.log(p / (1.0 - p)), dtype=np.float64)


def _standard(x: F64, ref: F64) -> F64:
    return np.asarray((x - ref.mean()) / (ref.std() + 1e-9), dtype=np.float64)


def mix_oof(
    prompt_x: F64, cascade_x: F64, mx: Matrix, c_prompt: Sequence[float],
    c_cascade: Sequence[float],
) -> tuple[F64, list[float]]:  # fmt: skip
    """The mix scheme (module docstring), per outer fold with that fold's chosen C of each
    model; w maximises the mean APGR of inner out-of-fold scores on the training folds."""
    scores = np.zeros(len(mx.target))
    chosen = []
    for i, fold in enumerate(np.unique(mx.folds)):
        train = mx.folds != fold
        parts = []
        inner = []
        for x, c in ((prompt_x, c_prompt[i]), (cascade_x, c_cascade[i])):
            inside = np.zeros(len(x))
            for f in np.unique(mx.folds[train]):
                tr, te = train & (mx.folds != f), train & (mx.folds == f)
                inside[te] = fit(x[tr], mx.target[tr], mx.sets[tr], c).predict(x[te])
            inner.append(_standard(_logit(inside), _logit(inside[train])))
            outer = _logit(fit(x[train], mx.target[train], mx.sets[train], c).predict(x))
            parts.append(_standard(outer, outer[train]))
        best, best_w = -1.0, 0.0
        for w in MIX_GRID:
            value = _mean_apgr(w * inner[0] + (1 - w) * inner[1], mx, train)
            if value > best + 1e-9:
                best, best_w = value, w
        chosen.append(best_w)
        scores[~train] = (best_w * parts[0] + (1 - best_w) * parts[1])[~train]
    return scores, chosen


# --- costs and the figures of one scheme on one set -------------------------------------


def cost_curve(scores: F64, out: Outcomes, pays_small: Callable[[F64], F64]) -> F64:
    """Total USD at k = 0..n large calls (highest scores first); `pays_small(order_scores)`
    says, per row in ranking order, whether its small call is made even when it goes large."""
    order = np.argsort(-scores, kind="stable")
    assert out.cost_small is not None and out.cost_large is not None
    small, large = out.cost_small[order], out.cost_large[order]
    extra = large - small + small * pays_small(scores[order])
    return float(small.sum()) + np.concatenate([[0.0], np.cumsum(extra)])


PAYS: dict[str, Callable[[F64], F64]] = {
    "prompt": lambda s: np.zeros_like(s),
    "cascade": lambda s: np.ones_like(s),
    "hybrid": lambda s: (s < 2.0).astype(np.float64),  # skipped rows never call small
    "random": lambda s: np.zeros_like(s),
    "mix": lambda s: np.ones_like(s),
}


def pays(scheme: str) -> Callable[[F64], F64]:
    """Which rows pay the small call: `cascade*` and `signal:*` all, `hybrid` the unskipped."""
    if scheme.startswith(("cascade", "signal:", "mix")):
        return PAYS["cascade"]
    return PAYS.get(scheme, PAYS["prompt"])


def figures(scheme: str, scores: F64, out: Outcomes) -> dict[str, float]:
    q = quality_curve(scores, out)
    k = int(np.flatnonzero(q >= FLOOR * q[-1] - 1e-12)[0])
    n = len(scores)
    all_large = float(out.cost_large.sum()) if out.cost_large is not None else 1.0
    cost = cost_curve(scores, out, pays(scheme))
    return {"apgr": apgr(scores, out), "cpt50": cpt(scores, out, 0.5),
            "cpt80": cpt(scores, out, 0.8), "large_share_at_95": k / n,
            "cost_fraction_at_95": float(cost[k]) / all_large,
            "usd_per_1k_at_95": 1000.0 * float(cost[k]) / n}  # fmt: skip


def bootstrap(
    schemes: dict[str, F64], out: Outcomes, n_boot: int, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """Every scheme's figures with 95% CIs, and paired differences against `prompt`."""
    rng = np.random.default_rng(seed)
    n = len(out.q_small)
    samples: dict[str, list[dict[str, float]]] = {s: [] for s in schemes}
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        sub = out.take(idx)
        for name, scores in schemes.items():
            samples[name].append(figures(name, scores[idx], sub))
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, scores in schemes.items():
        point = figures(name, scores, out)
        result[name] = {}
        for metric, value in point.items():
            vals = [s[metric] for s in samples[name]]
            lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (value, value)
            result[name][metric] = {"value": value, "lo": float(lo), "hi": float(hi)}
        if name != "prompt" and "prompt" in schemes and n_boot:
            d = [a["apgr"] - b["apgr"] for a, b in zip(samples[name], samples["prompt"],
                                                        strict=True)]  # fmt: skip
            lo, hi = np.percentile(d, [2.5, 97.5])
            result[name]["apgr_minus_prompt"] = {
                "value": point["apgr"] - figures("prompt", schemes["prompt"], out)["apgr"],
                "lo": float(lo), "hi": float(hi)}  # fmt: skip
    return result


def evaluate(
    mx: Matrix, n_boot: int = 1000, signal_boot: int = 200
) -> tuple[dict[str, Any], dict[str, F64]]:
    """(report, out-of-fold scores by scheme): per signal group, per set, with CIs."""
    oof, chosen = out_of_fold_all(mx)
    return summarise(mx, oof, chosen, n_boot, signal_boot), oof


def out_of_fold_all(mx: Matrix) -> tuple[dict[str, F64], dict[str, list[float]]]:
    """Out-of-fold scores of every scheme and signal group, and each fold's chosen C/skip."""
    oof: dict[str, F64] = {}
    chosen: dict[str, list[float]] = {}
    oof["prompt"], chosen["prompt"] = out_of_fold(mx.prompt_x, mx, C_GRID_WIDE)
    for group in (*GROUPS, EMBEDDING_GROUP):
        own = [mx.columns.index(c) for c in GROUPS.get(group, ())]
        if own and np.ptp(mx.scalars[:, own], axis=0).max() == 0:
            continue  # not in these records (log-probabilities, second samples)
        x = mx.scalars[:, own] if own else mx.answer_emb
        if group == "format":  # the kinds are format signals too: with their interactions
            x = mx.features([group], interactions=True)
        grid = C_GRID_WIDE if group == EMBEDDING_GROUP else C_GRID
        oof[f"signal:{group}"], chosen[group] = out_of_fold(x, mx, grid)
    oof["cascade"], chosen["cascade"] = out_of_fold(mx.features(SHIPPED_GROUPS, True), mx)
    with_emb = mx.features((*SHIPPED_GROUPS, EMBEDDING_GROUP), True)
    oof["cascade+embedding"], chosen["cascade+embedding"] = out_of_fold(with_emb, mx, C_GRID_WIDE)
    oof["hybrid"], chosen["hybrid"] = hybrid_oof(oof["prompt"], oof["cascade"], mx)
    oof["mix"], chosen["mix"] = mix_oof(mx.prompt_x, mx.features(SHIPPED_GROUPS, True), mx,
                                        chosen["prompt"], chosen["cascade"])  # fmt: skip
    return oof, chosen


def summarise(
    mx: Matrix, oof: dict[str, F64], chosen: dict[str, list[float]], n_boot: int,
    signal_boot: int,
) -> dict[str, Any]:  # fmt: skip
    report: dict[str, Any] = {"sets": {}, "chosen": chosen, "n_boot": n_boot}
    for name in dict.fromkeys(mx.sets.tolist()):
        mask = mx.sets == name
        out = mx.outcomes(mask)
        main = {k: oof[k][mask] for k in MAIN_SCHEMES}
        entry = {"n": int(mask.sum()), "q_small": float(out.q_small.mean()),
                 "q_large": float(out.q_large.mean()),
                 "schemes": bootstrap(main, out, n_boot)}  # fmt: skip
        sig = {k: v[mask] for k, v in oof.items() if k.startswith("signal:")}
        entry["signals"] = {k.removeprefix("signal:"): v["apgr"]
                            for k, v in bootstrap(sig, out, signal_boot).items()}  # fmt: skip
        entry["random_share_at_95"] = _random_share(out)
        report["sets"][name] = entry
    return report


def _random_share(out: Outcomes) -> float:
    qs, ql = float(out.q_small.mean()), float(out.q_large.mean())
    return 0.0 if qs >= FLOOR * ql else min(1.0, (FLOOR * ql - qs) / (ql - qs))


def served_mix(
    mx: Matrix, verifier_oof: F64, router: str, data: Path | None, n_boot: int
) -> dict[str, Any]:
    """The served mix (`lab/verifier_mix.py`): its weight, standardisation and thresholds,
    and its out-of-fold figures per set against the served router's out-of-fold scores
    ("prompt" there) and the cascade alone."""
    from gateway.router.lab.verifier_mix import fit_mix, mix_meta, router_oof, served_mix_oof

    routed = router_oof([r.example for r in mx.rows], router, data)
    keep = ~np.isnan(routed)
    idx = np.flatnonzero(keep)

    def outcomes(mask: npt.NDArray[np.bool_]) -> Outcomes:
        full = np.zeros(len(mx.rows), dtype=bool)
        full[idx[mask]] = True
        return mx.outcomes(full)

    r, v, sets = routed[keep], verifier_oof[keep], mx.sets[keep]
    mixed, chosen = served_mix_oof(r, v, mx.folds[keep], sets, outcomes)
    q = (np.array([x.example.q_small for x in mx.rows])[keep],
         np.array([x.example.q_large for x in mx.rows])[keep])  # fmt: skip
    fitted = fit_mix(r, v, q, sets, chosen, router)
    evaluation: dict[str, Any] = {"chosen": chosen, "n_boot": n_boot, "sets": {}}
    for name in dict.fromkeys(sets.tolist()):
        m = sets == name
        schemes = {"prompt": r[m], "cascade": v[m], "mix": mixed[m]}
        paired = bootstrap({"prompt": v[m], "mix": mixed[m]}, outcomes(m), n_boot)["mix"]
        evaluation["sets"][name] = {
            "n": int(m.sum()), "schemes": bootstrap(schemes, outcomes(m), n_boot),
            "mix_minus_cascade": paired.get("apgr_minus_prompt"),  # paired, same resamples
        }  # fmt: skip
    return mix_meta(fitted, evaluation)


SLICE = {"gsm8k": 300, "rb_winogrande": 200}  # the rows `slice_figure` re-trains on


def slice_figure(data: Path | None = None, c: float = 0.1) -> dict[str, Any]:
    """A quick reproducibility check recorded in the artifact: out-of-fold APGR of the shipped
    signals (fixed C) on the first rows of two sets; tests/cascade recompute it."""
    from gateway.router.lab.verifier_data import load

    rows = [r for name, n in SLICE.items() for r in load(name, data)[:n]]
    mx = build(rows, embed=False)
    scores, _ = out_of_fold(mx.features(SHIPPED_GROUPS, True), mx, (c,))
    return {"rows": dict(SLICE), "c": c,
            "apgr": {name: apgr(scores[mx.sets == name], mx.outcomes(mx.sets == name))
                     for name in SLICE}}  # fmt: skip


def train(
    sets: Sequence[str] = VERIFIER_SETS, data: Path | None = None, labels: Sequence[Path] = (),
    name: str = "verifier-v1", out_dir: Path = ARTIFACTS_DIR, n_boot: int = 1000,
    groups: Sequence[str] = SHIPPED_GROUPS, png: Path | None = None,
    mix_router: str | None = DEFAULT_NAME,
) -> tuple[VerifierModel, dict[str, Any]]:  # fmt: skip
    """Evaluate (out-of-fold), then fit on every row and write `<name>.json`; `png`: the
    savings page of the out-of-fold schemes on GSM8K (the README's picture); `mix_router`:
    the prompt router the served mix is fitted for (`served_mix`; None: no mix)."""
    from gateway.router.lab.verifier_data import read_labels

    started = time.monotonic()
    rows = load_all(sets, data) + [r for p in labels for r in read_labels(p)]
    mx = build(rows)
    report, oof = evaluate(mx, n_boot)
    x = mx.features(groups, interactions=True)
    c = float(np.median(report["chosen"]["cascade"]))
    model = fit(x, mx.target, mx.sets, c)
    weights = np.full(len(mx.sets), 1.0)
    for s in np.unique(mx.sets):  # every set weighs the same in the calibration
        weights[mx.sets == s] = 1.0 / (mx.sets == s).sum()
    q = np.array([r.example.q_small for r in rows]), np.array([r.example.q_large for r in rows])
    cal = calibrate(oof["cascade"], weights, (oof["cascade"], *q))
    threshold = cal.threshold_for_quality(FLOOR)
    if png is not None and "gsm8k" in sets:
        from gateway.router.lab.report_frontier import draw_out_of_fold

        draw_out_of_fold(mx, oof, "gsm8k", png, threshold)
    cols = signal_columns(groups)
    meta = {"c": c, "sets": list(sets), "rows": len(rows), "evaluation": report,
            "calibration": cal.to_json(), "train_seconds": round(time.monotonic() - started, 1),
            "threshold_rule": f"quality floor {FLOOR}, every set equal, out-of-fold"}  # fmt: skip
    if set(SLICE) <= set(sets):
        meta["slice"] = slice_figure(data)
    if mix_router:
        meta["mix"] = served_mix(mx, oof["cascade"], mix_router, data, n_boot)
    vm = VerifierModel(name, tuple(groups), cols, model.mean, model.scale, model.coef,
                       model.bias, threshold, meta, interactions=True)  # fmt: skip
    if out_dir is not None:
        import json

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{name}.json").write_text(json.dumps(vm.to_json(), indent=1) + "\n")
    return vm, report
