"""Model comparison and honest (nested) cross-validated evaluation.

- `compare`: out-of-fold APGR per set for each candidate spec (the measurement behind the
  choice of model family; these figures are what the choice was made on).
- `nested_scores`: for each outer fold, pick the candidate with the best mean inner-CV APGR
  (over the other folds only), fit it on the other folds, score the outer fold. The reported
  evaluation uses these scores: no figure comes from data the model was trained or tuned on.
"""

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.lab.corpus import Corpus
from gateway.router.lab.crossval import out_of_fold
from gateway.router.lab.metrics import apgr
from gateway.router.lab.training import Spec, fit
from gateway.router.mixture import GATE_DIMS, Mixture
from gateway.router.neighbours import K_GRID, Neighbours, choose

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


def _inner_choice(
    corpus: Corpus,
    specs: Sequence[Spec],
    outer: int,
    power: float,
    knn: dict[int, npt.NDArray[np.float32]] | None = None,
    hard_gate: bool = False,
    hard: F64 | None = None,
) -> tuple[int, dict[str, Any]]:
    """The spec with the best mean inner-CV APGR over the training folds of `outer`; with `knn`
    (the kNN term's value per row for each k, see neighbours.py), also the term's k and class
    weights, chosen on that spec's inner-fold scores of the training folds only."""
    train = corpus.folds != outer
    weight, gain, sets = corpus.weights(power), corpus.gain, corpus.set_of_row
    best, best_value = 0, -np.inf
    best_scores, best_gate = np.zeros(0), np.zeros((0, 0), np.float32)
    for i, spec in enumerate(specs):
        scores, gate = np.zeros(len(gain)), np.zeros((len(gain), 0), np.float32)
        for inner in np.unique(corpus.folds[train]):
            fit_rows, val = train & (corpus.folds != inner), corpus.folds == inner
            h = None if hard is None else hard[fit_rows]
            model = fit(spec, corpus.x[fit_rows], gain[fit_rows], weight[fit_rows], sets[fit_rows],
                        h)  # fmt: skip
            scores[val] = model.predict(corpus.x[val])
            if knn is not None:
                g = model.gate(corpus.x[val])
                if gate.shape[1] != g.shape[1]:
                    gate = np.zeros((len(gain), g.shape[1]), np.float32)
                gate[val] = g
        value = float(np.mean(list(per_set_apgr(corpus, scores, train).values())))
        if value > best_value:
            best, best_value, best_scores, best_gate = i, value, scores, gate
    if knn is None:
        return best, {}
    classes = sorted(set(sets[train].tolist()))
    top = np.argmax(best_gate, axis=1)

    def weight_of(w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return w[top] if hard_gate else (best_gate @ w).astype(np.float32)

    k, class_weight = choose(
        best_scores, weight_of, knn, classes, lambda s: per_set_apgr(corpus, s, train)
    )
    return best, {"knn_k": k, "knn_class_weight": [float(w) for w in class_weight]}


def attach_neighbours(model: Mixture, aux: Neighbours | None, choice: dict[str, Any]) -> Mixture:
    """`model` with the kNN term over `aux` at the k and class weights of `choice`."""
    if aux is None or not choice:
        return model
    weights = np.asarray(choice["knn_class_weight"], np.float32)
    return model.with_neighbours(replace(aux, k=int(choice["knn_k"]), class_weight=weights))


def nested_scores(
    corpus: Corpus, specs: Sequence[Spec], power: float, aux: Neighbours | None = None,
    hard: F64 | None = None,
) -> tuple[F64, list[dict[str, Any]]]:  # fmt: skip
    """Out-of-fold scores with per-fold inner selection among `specs`, and what was chosen.

    `aux`: an optional kNN term over auxiliary prompts that are never evaluated (neighbours.py);
    its k and class weights are chosen inside each outer fold's training folds. `hard`: the
    difficulty targets (lab/difficulty.py), for specs with a `difficulty_weight`."""
    scores, gain, weight = np.zeros(len(corpus.examples)), corpus.gain, corpus.weights(power)
    sets = corpus.set_of_row
    knn = None if aux is None else aux.knn_mean(corpus.x[:, :GATE_DIMS], K_GRID)
    chosen: list[dict[str, Any]] = []
    for outer in np.unique(corpus.folds):
        pick, extra = 0, dict[str, Any]()
        if len(specs) > 1 or knn is not None:
            hard_gate = aux is not None and aux.hard_gate
            pick, extra = _inner_choice(corpus, specs, int(outer), power, knn, hard_gate, hard)
        train, test = corpus.folds != outer, corpus.folds == outer
        h = None if hard is None else hard[train]
        model = fit(specs[pick], corpus.x[train], gain[train], weight[train], sets[train], h)
        model = attach_neighbours(model, aux, extra)
        scores[test] = model.predict(corpus.x[test])
        chosen.append({"fold": int(outer), "spec": label(specs[pick]), **extra})
    return scores, chosen
