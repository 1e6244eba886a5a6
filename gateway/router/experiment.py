"""Model comparison and honest (nested) cross-validated evaluation.

- `compare`: out-of-fold APGR per set for each candidate spec (the measurement behind the
  choice of model family; these figures are what the choice was made on).
- `nested_scores`: for each outer fold, pick the candidate with the best mean inner-CV APGR
  (over the other folds only), fit it on the other folds, score the outer fold. The reported
  evaluation uses these scores: no figure comes from data the model was trained or tuned on.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.corpus import Corpus
from gateway.router.crossval import out_of_fold
from gateway.router.metrics import apgr
from gateway.router.training import Spec, fit

F64 = npt.NDArray[np.float64]


def label(spec: Spec) -> str:
    params = ",".join(f"{k}={v}" for k, v in sorted(spec.params.items()))
    return f"{spec.kind}[{spec.columns}]({params})"


def per_set_apgr(corpus: Corpus, scores: F64, rows: npt.NDArray[np.bool_]) -> dict[str, float]:
    result: dict[str, float] = {}
    for name in corpus.sets:
        sel = rows & corpus.mask(name)
        if sel.sum() >= 10:
            result[name] = apgr(scores[sel], corpus.outcomes(sel))
    return result


def compare(corpus: Corpus, specs: Sequence[Spec], power: float) -> dict[str, dict[str, float]]:
    """{spec label: {set: out-of-fold APGR, "mean": ...}}."""
    weight, everything = corpus.weights(power), np.ones(len(corpus.examples), dtype=bool)
    table: dict[str, dict[str, float]] = {}
    for spec in specs:
        scores = out_of_fold(spec, corpus.x, corpus.gain, corpus.folds, weight, corpus.set_of_row)
        row = per_set_apgr(corpus, scores, everything)
        row["mean"] = float(np.mean(list(row.values())))
        table[label(spec)] = row
    return table


def _inner_choice(corpus: Corpus, specs: Sequence[Spec], outer: int, power: float) -> int:
    train = corpus.folds != outer
    weight, gain, sets = corpus.weights(power), corpus.gain, corpus.set_of_row
    best, best_value = 0, -np.inf
    for i, spec in enumerate(specs):
        scores = np.zeros(len(gain))
        for inner in np.unique(corpus.folds[train]):
            fit_rows, val = train & (corpus.folds != inner), corpus.folds == inner
            model = fit(spec, corpus.x[fit_rows], gain[fit_rows], weight[fit_rows], sets[fit_rows])
            scores[val] = model.predict(corpus.x[val])
        value = float(np.mean(list(per_set_apgr(corpus, scores, train).values())))
        if value > best_value:
            best, best_value = i, value
    return best


def nested_scores(
    corpus: Corpus, specs: Sequence[Spec], power: float
) -> tuple[F64, list[dict[str, Any]]]:
    """Out-of-fold scores with per-fold inner selection among `specs`, and what was chosen."""
    scores, gain, weight = np.zeros(len(corpus.examples)), corpus.gain, corpus.weights(power)
    sets = corpus.set_of_row
    chosen: list[dict[str, Any]] = []
    for outer in np.unique(corpus.folds):
        pick = 0 if len(specs) == 1 else _inner_choice(corpus, specs, int(outer), power)
        train, test = corpus.folds != outer, corpus.folds == outer
        model = fit(specs[pick], corpus.x[train], gain[train], weight[train], sets[train])
        scores[test] = model.predict(corpus.x[test])
        chosen.append({"fold": int(outer), "spec": label(specs[pick])})
    return scores, chosen
