"""Fitting router models (scikit-learn: a dev/training dependency only) and exporting them to
the numpy `DenseModel`.

Targets are soft: y = clip(q_large - q_small, 0, 1), the probability-like amount by which the
large tier was needed; logistic losses take it by duplicating each row with weights y and 1 - y.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.model import DenseModel

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Spec:
    """A model family and its hyper-parameters."""

    kind: str  # "logreg" | "mlp"
    params: Mapping[str, Any] = field(default_factory=dict)
    columns: str = "all"  # "all" | "embedding" | "structural"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "columns": self.columns, **dict(self.params)}


def soft_targets(gain: F64) -> F64:
    return np.clip(gain, 0.0, 1.0)


def column_mask(n_inputs: int, columns: str) -> npt.NDArray[np.bool_]:
    mask = np.ones(n_inputs, dtype=bool)
    if columns == "embedding":
        mask[384:] = False
    elif columns == "structural":
        mask[:384] = False
    return mask


def _duplicate(x: F32, y: F64, w: F64) -> tuple[F32, npt.NDArray[np.int64], F64]:
    xx = np.concatenate([x, x])
    yy = np.concatenate([np.ones(len(y), np.int64), np.zeros(len(y), np.int64)])
    ww = np.concatenate([w * y, w * (1.0 - y)])
    keep = ww > 0
    return xx[keep], yy[keep], ww[keep]


def fit(spec: Spec, x: F32, gain: F64, weight: F64 | None = None, seed: int = 0) -> DenseModel:
    """Fit `spec` on rows `x` with large-tier gains `gain`; return the numpy model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mask = column_mask(x.shape[1], spec.columns)
    mean = x.mean(axis=0).astype(np.float32)
    scale = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
    scale[~mask] = 1.0
    z = (x - mean) / scale
    z[:, ~mask] = 0.0
    w = np.ones(len(x)) if weight is None else weight
    xx, yy, ww = _duplicate(z.astype(np.float32), soft_targets(gain), w * len(w) / w.sum())
    if spec.kind == "logreg":
        lr = LogisticRegression(C=float(spec.params.get("C", 0.1)), max_iter=500)
        lr.fit(xx, yy, sample_weight=ww)
        coef = (lr.coef_.T * mask[:, None]).astype(np.float32)
        return DenseModel(mean, scale, (coef,), (lr.intercept_.astype(np.float32),))
    if spec.kind == "mlp":
        mlp = MLPClassifier(
            hidden_layer_sizes=(int(spec.params.get("hidden", 32)),),
            alpha=float(spec.params.get("alpha", 1e-2)),
            max_iter=int(spec.params.get("epochs", 30)),
            batch_size=256, learning_rate_init=1e-3, random_state=seed,
        )  # fmt: skip
        mlp.fit(xx, yy, sample_weight=ww)
        w0 = (mlp.coefs_[0] * mask[:, None]).astype(np.float32)
        return DenseModel(
            mean, scale,
            (w0, mlp.coefs_[1].astype(np.float32)),
            tuple(b.astype(np.float32) for b in mlp.intercepts_),
        )  # fmt: skip
    raise ValueError(f"unknown model kind {spec.kind!r}")
