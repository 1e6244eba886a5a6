"""Fitting router models (scikit-learn: a dev/training dependency only) and exporting them to
the numpy `DenseModel`.

Targets are soft: y = clip(q_large - q_small, 0, 1), the probability-like amount by which the
large tier was needed; logistic losses take it by duplicating each row with weights y and 1 - y.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.features import FEATURE_NAMES
from gateway.router.mixture import GATE_DIMS, Mixture
from gateway.router.model import DenseModel

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Spec:
    """A model family and its hyper-parameters."""

    kind: str  # "logreg" | "mlp" | "mixture"; compared only: "knn" | "gbm" (baselines.py)
    params: Mapping[str, Any] = field(default_factory=dict)
    columns: str = "all"  # "all" | "embedding" | "structural" | "embedding+length"

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
    elif columns == "embedding+length":
        mask[384:] = False
        mask[384 + FEATURE_NAMES.index("log_chars_core")] = True
    return mask


def balanced_rows(
    x: F32, y: F64, w: F64, sets: npt.NDArray[np.str_] | None
) -> tuple[F32, npt.NDArray[np.int64], F64]:
    """Rows twice (label 1 with weight w*y, label 0 with w*(1-y)); with `sets`, positives and
    negatives are reweighted to balance within every set, so that what tells the sets apart
    (a set's base rate) is not learnt as difficulty: only what ranks prompts within a set is."""
    pos, neg = w * y, w * (1.0 - y)
    if sets is not None:
        for name in np.unique(sets):
            rows = sets == name
            p_sum, n_sum = pos[rows].sum(), neg[rows].sum()
            total = p_sum + n_sum
            if p_sum > 0 and n_sum > 0:
                pos[rows] *= 0.5 * total / p_sum
                neg[rows] *= 0.5 * total / n_sum
    xx = np.concatenate([x, x])
    yy = np.concatenate([np.ones(len(y), np.int64), np.zeros(len(y), np.int64)])
    ww = np.concatenate([pos, neg])
    keep = ww > 0
    return xx[keep], yy[keep], ww[keep]


def weighted_rows(
    x: F32, gain: F64, weight: F64 | None, sets: npt.NDArray[np.str_] | None
) -> tuple[F32, npt.NDArray[np.int64], F64]:
    """`balanced_rows` of the soft targets, with the row weights scaled to a mean of 1."""
    w = np.ones(len(x)) if weight is None else weight
    return balanced_rows(x, soft_targets(gain), w * len(w) / w.sum(), sets)


def fit_dense(
    spec: Spec,
    x: F32,
    gain: F64,
    weight: F64 | None = None,
    sets: npt.NDArray[np.str_] | None = None,
    seed: int = 0,
) -> DenseModel:
    """Fit `spec` on rows `x` with large-tier gains `gain`; return the numpy model.

    `sets` (the data set of each row) turns on per-set class balancing when the spec asks for it
    (`balance: True`, the default)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mask = column_mask(x.shape[1], spec.columns)
    mean = x.mean(axis=0).astype(np.float32)
    scale = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
    scale[~mask] = 1.0
    z = (x - mean) / scale
    z[:, ~mask] = 0.0
    balance = sets if spec.params.get("balance", True) else None
    xx, yy, ww = weighted_rows(z.astype(np.float32), gain, weight, balance)
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


def fit(
    spec: Spec,
    x: F32,
    gain: F64,
    weight: F64 | None = None,
    sets: npt.NDArray[np.str_] | None = None,
    hard: F64 | None = None,
) -> Mixture:
    """Fit any spec: "mixture" (gated experts, see mixture.py) or a single dense model.

    A mixture spec with `difficulty_weight` > 0 also fits a general-difficulty model (one
    logistic regression on every feature, C `difficulty_C`, target `hard`: lab/difficulty.py)
    on every row and adds its logit x the weight to every expert (`with_difficulty`)."""
    if spec.kind != "mixture":
        return Mixture.single(fit_dense(spec, x, gain, weight, sets))
    if sets is None:
        sets = np.full(len(x), "all")
    classes = sorted(set(sets.tolist()))
    params = dict(spec.params)
    general = Spec("logreg", {"C": params.get("general_C", 0.001)})
    expert = Spec(
        "logreg",
        {"C": params.get("expert_C", 0.0003)},
        str(params.get("expert_columns", "embedding+length")),
    )
    experts = [fit_dense(general, x, gain, weight, sets)]
    expert_of_class: list[int] = []
    for name in classes:
        rows = sets == name
        if rows.sum() >= int(params.get("expert_min_rows", 1000)):
            experts.append(fit_dense(expert, x[rows], gain[rows], None, sets[rows]))
            expert_of_class.append(len(experts) - 1)
        else:
            expert_of_class.append(0)
    gate_w, gate_b = _fit_gate(x[:, :GATE_DIMS], sets, classes, float(params.get("gate_C", 1.0)))
    temperature = float(params.get("gate_temperature", 1.0))  # > 1: softer gate
    gate_w, gate_b = gate_w / temperature, gate_b / temperature
    offsets = _prior_log_odds(gain, sets, classes)
    if not params.get("prior_offsets", False):
        offsets = np.zeros(len(classes), np.float32)
    difficulty_weight = float(params.get("difficulty_weight", 0.0))
    if difficulty_weight:
        if hard is None:
            raise ValueError("difficulty_weight needs the difficulty targets (`hard`)")
        spec_d = Spec("logreg", {"C": params.get("difficulty_C", 1e-4)})
        general_d = fit_dense(spec_d, x, hard, weight, sets)
        experts = [with_difficulty(e, general_d, difficulty_weight) for e in experts]
    return Mixture(gate_w, gate_b, tuple(experts), tuple(expert_of_class), offsets)


def needs_difficulty(specs: Sequence[Spec]) -> bool:
    return any(float(s.params.get("difficulty_weight", 0.0)) for s in specs)


def with_difficulty(expert: DenseModel, hard: DenseModel, weight: float) -> DenseModel:
    """One linear model whose logit is expert's + weight x hard's (both linear), in the
    expert's standardisation: the serving format of a plain expert."""
    if len(expert.weights) != 1 or len(hard.weights) != 1:
        raise ValueError("only linear experts can take the difficulty term")
    m_e, s_e = expert.mean.astype(np.float64), expert.scale.astype(np.float64)
    m_d, s_d = hard.mean.astype(np.float64), hard.scale.astype(np.float64)
    w_d = hard.weights[0].astype(np.float64)
    w = expert.weights[0].astype(np.float64) + weight * w_d * (s_e / s_d)[:, None]
    b = expert.biases[0].astype(np.float64) + weight * (
        hard.biases[0].astype(np.float64) + ((m_e - m_d) / s_d) @ w_d
    )
    return DenseModel(expert.mean, expert.scale, (w.astype(np.float32),), (b.astype(np.float32),))


def _prior_log_odds(gain: F64, sets: npt.NDArray[np.str_], classes: list[str]) -> F32:
    """log(p / (1 - p)) of each class's mean soft target (what balancing took out)."""
    rates = np.array([soft_targets(gain[sets == c]).mean() for c in classes])
    rates = np.clip(rates, 1e-3, 1 - 1e-3)
    log_odds: F32 = np.log(rates / (1.0 - rates)).astype(np.float32)
    return log_odds


def _fit_gate(
    emb: F32, sets: npt.NDArray[np.str_], classes: list[str], c: float
) -> tuple[F32, F32]:
    from sklearn.linear_model import LogisticRegression

    if len(classes) == 1:
        return np.zeros((GATE_DIMS, 1), np.float32), np.zeros(1, np.float32)
    gate = LogisticRegression(C=c, max_iter=300).fit(emb, sets)
    assert list(gate.classes_) == classes
    if len(classes) == 2:  # sklearn's binary form: one logit for classes[1]
        w = np.concatenate([np.zeros_like(gate.coef_), gate.coef_]).T
        b = np.concatenate([[0.0], gate.intercept_])
        return w.astype(np.float32), b.astype(np.float32)
    return gate.coef_.T.astype(np.float32), gate.intercept_.astype(np.float32)
