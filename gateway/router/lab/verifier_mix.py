"""The served mix (README, "The answer verifier"): the cascade escalates on
w x z(logit(router score)) + (1 - w) x z(logit(verifier score)), the router being the shipped
prompt router (`artifact.DEFAULT_NAME`). Its weight and standardisation are fitted on
*out-of-fold* router scores: for each of the router artifact's 5 folds, the spec that fold
chose in the artifact's nested evaluation (`evaluation.folds`) is refitted on the other folds
(with the difficulty targets when the spec has a `difficulty_weight`) and scores that fold,
which reproduces the artifact's recorded out-of-fold scores (the per-set APGR is checked
against the recorded one). In-sample scores of the shipped artifact would be those of a model
that saw the row: overconfident, and not what an unseen prompt gets.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.artifact import DEFAULT_NAME
from gateway.router.lab.calibrate import calibrate
from gateway.router.lab.examples import Example
from gateway.router.lab.metrics import apgr
from gateway.router.verifier import Mix, logit

F64 = npt.NDArray[np.float64]
MIX_GRID = tuple(round(0.05 * i, 2) for i in range(21))
FLOOR = 0.95


def row_key(e: Example) -> str:
    """An example's identity across the router's corpus and the verifier's rows (MT-Bench's
    second turn differs in its assistant message, so the turn, not the text, tells it)."""
    return f"{e.dataset}|{e.group}|{e.meta.get('turn', '')}"


def router_oof(
    examples: Sequence[Example], router: str = DEFAULT_NAME, data: Path | None = None,
    use_cache: bool = True,
) -> F64:  # fmt: skip
    """The router's score of each example as an unseen prompt gets it: out-of-fold for the
    rows of the router's own corpus, the served artifact's score for any other row (your
    labels: the artifact was not trained on them; its `data.logs` says what it was)."""
    from gateway.router.lab.embeddings import cache_dir

    by_key = _router_oof_table(router, data, use_cache, cache_dir())
    scores = np.array([by_key.get(row_key(e), np.nan) for e in examples], dtype=np.float64)
    unseen = np.flatnonzero(np.isnan(scores))
    if len(unseen):
        from gateway.router.loading import load_scorer

        scorer: Any = load_scorer(router)
        convs = [(examples[i].messages, examples[i].tools) for i in unseen.tolist()]
        scores[unseen] = scorer.score_many(convs)
    return scores


def _router_oof_table(
    router: str, data: Path | None, use_cache: bool, folder: Path
) -> dict[str, float]:
    from gateway.router import artifact as artifacts
    from gateway.router.lab import trainer
    from gateway.router.lab.experiment import label
    from gateway.router.lab.training import fit

    art = artifacts.load(router)
    meta = art.meta
    digest = hashlib.sha256(json.dumps(meta["evaluation"], sort_keys=True).encode()).hexdigest()
    path = folder / f"oof-{router}-{digest[:16]}.json"
    if use_cache and path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    grid = trainer.with_difficulty_weight(
        trainer.GRID, float(meta["model"].get("difficulty_weight", 0.0))
    )
    spec_of = {label(s): s for s in grid}
    emb = meta["embedder"]
    opts = trainer.Options(data_dir=data, sets=meta["data"]["public_sets"],
                           variant=emb["variant"], max_tokens=int(emb["max_tokens"]))  # fmt: skip
    corpus = trainer.load_corpus(opts)
    weight = corpus.weights(trainer.SET_WEIGHT_POWER)
    hard = trainer.hard_targets(corpus, opts, grid)
    scores = np.zeros(len(corpus.examples))
    for chosen in meta["evaluation"]["folds"]:
        test = corpus.folds == int(chosen["fold"])
        model = fit(spec_of[chosen["spec"]], corpus.x[~test], corpus.gain[~test],
                    weight[~test], corpus.set_of_row[~test],
                    None if hard is None else hard[~test])  # fmt: skip
        scores[test] = model.predict(corpus.x[test])
    for name, entry in meta["evaluation"]["sets"].items():  # the artifact's own figures
        rows = corpus.mask(name)
        got, recorded = apgr(scores[rows], corpus.outcomes(rows)), entry["router"]["apgr"]["value"]
        if abs(got - recorded) > 0.01:
            raise RuntimeError(f"{router}: out-of-fold APGR on {name} is {got:.3f}, the artifact "
                               f"recorded {recorded:.3f}: not the same scores")  # fmt: skip
    table = {row_key(e): float(s) for e, s in zip(corpus.examples, scores, strict=True)}
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table), encoding="utf-8")
    return table


def _standard(x: F64, ref: F64) -> F64:
    return np.asarray((x - ref.mean()) / (ref.std() + 1e-9), dtype=np.float64)


def _mean_apgr(scores: F64, sets: npt.NDArray[np.str_], mask: Any, outcomes: Any) -> float:
    values = []
    for name in np.unique(sets[mask]):
        m = mask & (sets == name)
        out = outcomes(m)
        if abs(out.q_large.mean() - out.q_small.mean()) > 1e-9:
            values.append(apgr(scores[m], out))
    return float(np.mean(values)) if values else 0.0


def best_weight(r: F64, v: F64, sets: npt.NDArray[np.str_], mask: Any, outcomes: Any) -> float:
    """The grid weight with the best mean APGR over the sets of `mask` (z over `mask`)."""
    zr, zv = _standard(r, r[mask]), _standard(v, v[mask])
    best, best_w = -1.0, 0.0
    for w in MIX_GRID:
        value = _mean_apgr(w * zr + (1 - w) * zv, sets, mask, outcomes)
        if value > best + 1e-9:
            best, best_w = value, w
    return best_w


def served_mix_oof(
    router: F64, verifier: F64, folds: npt.NDArray[np.int64], sets: npt.NDArray[np.str_],
    outcomes: Any,
) -> tuple[F64, list[float]]:  # fmt: skip
    """Out-of-fold mixed scores: per outer fold, w and the standardisation come from the
    training folds' (out-of-fold) scores only."""
    r, v = logit(router), logit(verifier)
    scores = np.zeros(len(r))
    chosen = []
    for fold in np.unique(folds):
        train = folds != fold
        w = best_weight(r, v, sets, train, outcomes)
        chosen.append(w)
        mixed = w * _standard(r, r[train]) + (1 - w) * _standard(v, v[train])
        scores[~train] = mixed[~train]
    return scores, chosen


def fit_mix(
    router: F64, verifier: F64, q: tuple[F64, F64], sets: npt.NDArray[np.str_],
    chosen: Sequence[float], name: str,
) -> Mix:  # fmt: skip
    """The served mix: the median of the folds' weights, the standardisation of every row's
    out-of-fold scores, thresholds at the quality floor for every grid weight (every set
    weighs the same) and the chosen weight's calibration."""
    r, v = logit(router), logit(verifier)
    w = float(np.median(chosen))
    w = min(MIX_GRID, key=lambda g: abs(g - w))
    weights = np.ones(len(sets))
    for s in np.unique(sets):
        weights[sets == s] = 1.0 / (sets == s).sum()
    base = Mix(name, w, float(r.mean()), float(r.std()), float(v.mean()), float(v.std()), 0.0)
    thresholds: dict[str, float] = {}
    cal_json: dict[str, Any] = {}
    for g in MIX_GRID:
        m = base.with_weight(g).scores(router, verifier)
        cal = calibrate(m, weights, (m, *q))
        thresholds[f"{g:.2f}"] = cal.threshold_for_quality(FLOOR)
        if g == w:
            cal_json = cal.to_json()
    return Mix(name, w, base.router_mean, base.router_std, base.verifier_mean,
               base.verifier_std, thresholds[f"{w:.2f}"], thresholds, cal_json)  # fmt: skip


def mix_meta(mix: Mix, evaluation: Mapping[str, Any]) -> dict[str, Any]:
    return {**mix.to_json(), "evaluation": dict(evaluation),
            "rule": f"weight: median of the 5 folds' choices; thresholds: quality floor {FLOOR}, "
                    "every set equal, out-of-fold router and verifier scores"}  # fmt: skip
