"""The learned router's weights and their numpy-only forward pass (no scikit-learn at serve time).

A model is a standardisation (mean, scale) followed by dense layers with ReLU between them and a
sigmoid at the end: logistic regression is the one-layer case, a small MLP the two-layer case.
A `Mixture` (mixture.py) stores several of them in one `.npz`.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DenseModel:
    mean: F32
    scale: F32
    weights: tuple[F32, ...]
    biases: tuple[F32, ...]

    @property
    def n_inputs(self) -> int:
        return int(self.mean.shape[0])

    def logits(self, x: F32) -> F32:
        """Log-odds of P(large needed) for each row of `x` (shape (n, n_inputs) or (n_inputs,))."""
        h = (np.atleast_2d(x).astype(np.float32) - self.mean) / self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                h = np.maximum(h, 0.0)
        out: F32 = np.clip(h[:, 0], -30.0, 30.0).astype(np.float32)
        return out

    def predict(self, x: F32) -> F32:
        """P(large needed) for each row of `x`."""
        probabilities: F32 = (1.0 / (1.0 + np.exp(-self.logits(x)))).astype(np.float32)
        return probabilities

    def arrays(self) -> dict[str, F32]:
        out: dict[str, F32] = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"w{i}"], out[f"b{i}"] = w, b
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, npt.NDArray[np.generic]]) -> "DenseModel":
        n = sum(1 for k in data if k.startswith("w"))
        f32 = np.float32
        return cls(
            mean=data["mean"].astype(f32),
            scale=data["scale"].astype(f32),
            weights=tuple(data[f"w{i}"].astype(f32) for i in range(n)),
            biases=tuple(data[f"b{i}"].astype(f32) for i in range(n)),
        )
