"""Model families that are compared (`frugal router train --compare`) but not served.

The shipped router is a numpy `Mixture` of logistic regressions; these families were measured
against it on the same folds and targets, and lost (see the artifact's "comparison"):

- "knn": the mean balanced target of the k nearest training prompts (cosine on the embedding);
- "gbm": scikit-learn's histogram gradient boosting on every feature (rows resampled to the
  balanced weights).

Neither has an export to the numpy runtime: one would be written if either won.
"""

from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.router.lab.training import Spec, fit, soft_targets, weighted_rows
from gateway.router.mixture import GATE_DIMS
from gateway.router.neighbours import centred_by_set

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


class Predictor(Protocol):
    def predict(self, x: F32) -> F32: ...


class _Neighbours:
    def __init__(self, emb: F32, target: F64, k: int) -> None:
        self.emb, self.target, self.k = emb, target, min(k, len(target))

    def predict(self, x: F32) -> F32:
        out = np.empty(len(x), dtype=np.float32)
        for start in range(0, len(x), 2048):
            sim = x[start : start + 2048, :GATE_DIMS] @ self.emb.T
            nearest = np.argpartition(-sim, self.k - 1, axis=1)[:, : self.k]
            out[start : start + 2048] = self.target[nearest].mean(axis=1)
        return out


class _Boosting:
    def __init__(self, model: object) -> None:
        self.model = model

    def predict(self, x: F32) -> F32:
        proba = self.model.predict_proba(x)  # type: ignore[attr-defined]
        return np.asarray(proba[:, 1], dtype=np.float32)


def fit_any(
    spec: Spec, x: F32, gain: F64, weight: F64 | None, sets: npt.NDArray[np.str_] | None
) -> Predictor:
    """`training.fit` for served families, the families above otherwise."""
    if spec.kind == "knn":
        # each set's mean target taken out, as balancing does for the served models
        target = centred_by_set(soft_targets(gain), sets)
        return _Neighbours(x[:, :GATE_DIMS], target, int(spec.params.get("k", 100)))
    if spec.kind == "gbm":
        from sklearn.ensemble import HistGradientBoostingClassifier

        xx, yy, ww = weighted_rows(x, gain, weight, sets)
        model = HistGradientBoostingClassifier(
            max_depth=int(spec.params.get("max_depth", 3)),
            learning_rate=float(spec.params.get("learning_rate", 0.05)),
            max_iter=int(spec.params.get("max_iter", 200)),
            random_state=0,
        )
        # resampled to the weights: scikit-learn's binning with sample weights is ~25x slower
        pick = np.random.default_rng(0).choice(len(yy), size=len(yy), p=ww / ww.sum())
        return _Boosting(model.fit(xx[pick], yy[pick]))
    return fit(spec, x, gain, weight, sets)
