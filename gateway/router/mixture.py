"""A gated mixture of routers (numpy-only at serve time).

A softmax gate over the MiniLM embedding says which kind of traffic a prompt resembles (one
class per training set: MMLU-like, GSM8K-like, ..., or one of your log files); each class has an
expert, a `DenseModel`. Classes with enough rows get an expert trained on their own rows only
(what makes a prompt hard differs between math word problems and multiple-choice trivia);
the others share a general model trained on every row. Experts are trained with positives and
negatives balanced within each set (so that they learn what ranks prompts, not which set a
prompt is from). score = sum_c gate_c(x) * sigmoid(expert_c logit(x) + class_offset_c).
`class_offset` can add back each set's prior log-odds (spec param `prior_offsets`), making the
score closer to a calibrated P(large needed) across kinds of traffic; measured, it costs
within-set ranking (MMLU out-of-fold APGR 0.578 vs 0.599, ARC-C 0.595 vs 0.616: gate
uncertainty then moves scores), so the shipped artifacts use zero offsets: their scores rank
prompts, and thresholds come from the calibration (calibration.py).
An adapted artifact adds an `Adapter` (adapter.py): the deployment's own labels on top.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.router.adapter import Adapter
from gateway.router.model import DenseModel
from gateway.router.neighbours import Neighbours

F32 = npt.NDArray[np.float32]
GATE_DIMS = 384  # the gate reads the embedding only


@dataclass(frozen=True, slots=True)
class Mixture:
    gate_w: F32  # (GATE_DIMS, n_classes)
    gate_b: F32  # (n_classes,)
    experts: tuple[DenseModel, ...]
    expert_of_class: tuple[int, ...]
    class_offset: F32  # (n_classes,) prior log-odds of each class
    neighbours: Neighbours | None = None  # optional kNN term (neighbours.py)
    adapter: Adapter | None = None  # optional in-domain adapter (adapter.py), applied last
    # all experts linear: their standardisation folded into one (n_inputs, n_experts) matrix,
    # so that a request costs one matmul instead of a few numpy calls per expert
    _linear: tuple[F32, F32] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if all(len(e.weights) == 1 for e in self.experts):
            w = np.concatenate([e.weights[0] / e.scale[:, None] for e in self.experts], axis=1)
            b = np.concatenate(
                [e.biases[0] - (e.mean / e.scale) @ e.weights[0] for e in self.experts]
            )
            object.__setattr__(self, "_linear", (w.astype(np.float32), b.astype(np.float32)))

    @classmethod
    def single(cls, expert: DenseModel) -> "Mixture":
        """One expert, no gating (a constant gate of 1)."""
        zeros = np.zeros((GATE_DIMS, 1), dtype=np.float32)
        return cls(zeros, np.zeros(1, np.float32), (expert,), (0,), np.zeros(1, np.float32))

    @property
    def n_inputs(self) -> int:
        return self.experts[0].n_inputs

    def gate(self, x: F32) -> F32:
        logits = np.atleast_2d(x)[:, :GATE_DIMS] @ self.gate_w + self.gate_b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def expert_logits(self, x: F32) -> F32:
        """(n, n_experts): each expert's logit for each row of `x`."""
        x2 = np.atleast_2d(x).astype(np.float32)
        if self._linear is not None:
            out: F32 = np.clip(x2 @ self._linear[0] + self._linear[1], -30.0, 30.0)
            return out
        return np.stack([e.logits(x2) for e in self.experts], axis=1)

    def predict(self, x: F32) -> F32:
        """P(large needed) for each row of `x`."""
        x2 = np.atleast_2d(x).astype(np.float32)
        by_expert = self.expert_logits(x2)
        per_class = 1.0 / (
            1.0 + np.exp(-(by_expert[:, list(self.expert_of_class)] + self.class_offset))
        )
        gate = self.gate(x2)
        score: F32 = (gate * per_class).sum(axis=1).astype(np.float32)
        if self.neighbours is not None:
            score = np.clip(score + self.neighbours.term(x2[:, :GATE_DIMS], gate), 0.0, 1.0)
        if self.adapter is not None:
            score = self.adapter.apply(score, by_expert, x2)
        return score

    def prior(self) -> "Mixture":
        """This mixture without its in-domain adapter (the public prior it was adapted from)."""
        return replace(self, adapter=None)

    def with_adapter(self, adapter: Adapter | None) -> "Mixture":
        return replace(self, adapter=adapter)

    def with_neighbours(self, neighbours: Neighbours | None) -> "Mixture":
        return replace(self, neighbours=neighbours)

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "gate_w": self.gate_w,
            "gate_b": self.gate_b,
            "expert_of_class": np.asarray(self.expert_of_class, dtype=np.int64),
            "n_experts": np.asarray(len(self.experts), dtype=np.int64),
            "class_offset": self.class_offset,
        }
        if self.neighbours is not None:
            arrays.update(self.neighbours.arrays())
        if self.adapter is not None:
            arrays.update(self.adapter.arrays())
        for j, expert in enumerate(self.experts):
            arrays.update({f"e{j}_{k}": v for k, v in expert.arrays().items()})
        with path.open("wb") as handle:
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> "Mixture":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        n = int(arrays["n_experts"])
        experts = tuple(
            DenseModel.from_arrays(
                {k.split("_", 1)[1]: v for k, v in arrays.items() if k.startswith(f"e{j}_")}
            )
            for j in range(n)
        )
        return cls(
            arrays["gate_w"].astype(np.float32),
            arrays["gate_b"].astype(np.float32),
            experts,
            tuple(int(i) for i in arrays["expert_of_class"]),
            arrays["class_offset"].astype(np.float32),
            Neighbours.from_arrays(arrays),
            Adapter.from_arrays(arrays),
        )
