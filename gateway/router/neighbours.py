"""A kNN term added to a `Mixture` score (numpy-only at serve time).

The term is the mean *centred* value (value minus its set's mean) of the k base prompts nearest
to the prompt, by cosine similarity in a PCA projection of the MiniLM embedding, times a
per-class weight mixed by the gate:
    score += (gate(x) @ class_weight) * mean_centred_value(kNN(x))
(or class_weight[argmax gate(x)] with `hard_gate=True`; measured, no better).
The shipped use (`frugal router train --neighbours`) takes as base the auxiliary prompts of
RouterDC split2_model7 with value = the share of seven ~7B models failing them ("hardness"),
minus every near-duplicate of an evaluated prompt: training-only data, so the term needs no
folds. (The same class also takes the training rows with their gains as base; measured, that
did not help: see README.)
Projecting to `DIMS` dimensions and storing float16 keeps the artifact small and the lookup
well under 0.5 ms (one (m x DIMS) mat-vec and an argpartition, m ~ 5k).

k and the class weights are hyper-parameters: `choose` picks them from inner-fold scores (see
experiment.nested_scores), so the reported figures stay nested out-of-fold.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
DIMS = 64
K_GRID: tuple[int, ...] = (30, 100)
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Neighbours:
    mean: F32  # (384,) embedding mean before projection
    projection: F32  # (384, DIMS)
    basis: F32  # (m, DIMS) unit-norm projected training embeddings
    values: F32  # (m,) centred gains
    k: int
    class_weight: F32  # (n_classes,)
    hard_gate: bool = False  # weight of the gate's top class (True) or gate-mixed weights

    def weight(self, gate: F32) -> F32:
        """The term's weight per row, from the gate probabilities (n, n_classes)."""
        if self.hard_gate:
            out: F32 = self.class_weight[np.argmax(gate, axis=1)]
            return out
        mixed: F32 = (gate @ self.class_weight).astype(np.float32)
        return mixed

    @classmethod
    def build(
        cls, emb: F32, gain: F64, sets: npt.NDArray[np.str_], k: int, class_weight: F32
    ) -> "Neighbours":
        mean = emb.mean(axis=0).astype(np.float32)
        _, _, vt = np.linalg.svd(emb - mean, full_matrices=False)
        projection = vt[:DIMS].T.astype(np.float32)
        values = centred_by_set(gain, sets)
        return cls(mean, projection, _unit((emb - mean) @ projection).astype(np.float16)
                   .astype(np.float32), values.astype(np.float32), k,
                   np.asarray(class_weight, np.float32))  # fmt: skip

    def knn_mean(self, emb: F32, ks: Sequence[int] = ()) -> dict[int, F32]:
        """{k: mean centred gain of the k nearest training prompts} per row of `emb`
        (for every k in `ks`, default this model's k)."""
        q = _unit((np.atleast_2d(emb) - self.mean) @ self.projection)
        sim = q @ self.basis.T
        ks = tuple(ks) or (self.k,)
        top = min(max(ks), sim.shape[1])
        idx = np.argpartition(-sim, top - 1, axis=1)[:, :top]
        if len(ks) > 1:  # nearest first, so that any prefix is the k nearest
            order = np.argsort(-np.take_along_axis(sim, idx, axis=1), axis=1)
            idx = np.take_along_axis(idx, order, axis=1)
        return {k: self.values[idx[:, :k]].mean(axis=1).astype(np.float32) for k in ks}

    def term(self, emb: F32, gate: F32) -> F32:
        out: F32 = (self.weight(gate) * self.knn_mean(emb)[self.k]).astype(np.float32)
        return out

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {
            "nb_mean": self.mean, "nb_projection": self.projection,
            "nb_basis": self.basis.astype(np.float16), "nb_values": self.values,
            "nb_k": np.asarray(self.k, np.int64), "nb_class_weight": self.class_weight,
            "nb_hard_gate": np.asarray(self.hard_gate),
        }  # fmt: skip

    @classmethod
    def from_arrays(cls, data: dict[str, npt.NDArray[np.generic]]) -> "Neighbours | None":
        if "nb_basis" not in data:
            return None
        f32 = np.float32
        return cls(data["nb_mean"].astype(f32), data["nb_projection"].astype(f32),
                   data["nb_basis"].astype(f32), data["nb_values"].astype(f32),
                   int(data["nb_k"]), data["nb_class_weight"].astype(f32),
                   bool(data.get("nb_hard_gate", False)))  # fmt: skip


def centred_by_set(values: F64, sets: npt.NDArray[np.str_] | None) -> F64:
    """`values` less their own set's mean (a set's base rate is not a prompt's difficulty)."""
    out = np.array(values, dtype=np.float64)
    for name in np.unique(sets) if sets is not None else ():
        rows = sets == name
        out[rows] -= out[rows].mean()
    return out


def _unit(v: npt.NDArray[np.floating]) -> F32:
    out: F32 = (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)).astype(np.float32)
    return out


def choose(
    base: F64,
    weight_of: Callable[[F32], F32],
    knn_by_k: dict[int, F32],
    classes: Sequence[str],
    per_set: Callable[[F64], dict[str, float]],
) -> tuple[int, F32]:
    """(k, class weights) maximising base + term's per-set APGR on inner-fold scores: each
    class's weight is chosen on its own set's APGR (greedily, class by class), then k on the
    mean over sets. (Choosing each weight on the mean over all sets instead was measured too:
    MMLU 0.577, GSM8K 0.617 out-of-fold, worse; see README.)"""
    best: tuple[float, int, F32] | None = None
    for k, knn in knn_by_k.items():
        weights = np.zeros(len(classes), np.float32)
        for c, name in enumerate(classes):
            values = []
            for w in WEIGHT_GRID:
                weights[c] = w
                values.append(per_set(base + weight_of(weights) * knn).get(name, 0.0))
            weights[c] = WEIGHT_GRID[int(np.argmax(values))]
        value = float(np.mean(list(per_set(base + weight_of(weights) * knn).values())))
        if best is None or value > best[0]:
            best = (value, k, weights.copy())
    assert best is not None
    return best[1], best[2]
