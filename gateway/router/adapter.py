"""The in-domain adapter: a deployment's own labels on top of the public prior (numpy only).

`frugal router train --logs labels.jsonl` keeps the public router (the prior) as it is and
learns, from the deployment's labelled prompts, two in-domain terms (lab/adapt.py):
- an in-domain expert: a ridge regression of the large tier's gain on the row's embedding
  and length (standardised, like every `DenseModel`);
- a kNN term: the mean centred gain of the k labelled prompts nearest by cosine.
The score blends them with the prior's logit and, optionally (`--public-experts`; measured no
better, so off by default: weight 0), the logits of the prior's own experts, each term
standardised by its spread on the labels (out-of-fold) and weighted as chosen by
cross-validation on the labels:
    terms = [prior logit, expert_logit_1..E of the prior, in-domain expert, kNN]
    score = sigmoid(sum_i weight_i * (term_i - centre_i) / spread_i)
A weight of 0 drops a term (the prior itself can be dropped when the labels say it misleads).
The score ranks prompts; thresholds come from the artifact's calibration, which an adapted
artifact measures on the labelled rows.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.router.model import DenseModel

F32 = npt.NDArray[np.float32]
EMBEDDING_DIMS = 384


def logit(p: F32) -> F32:
    q = np.clip(p.astype(np.float64), 1e-6, 1.0 - 1e-6)
    out: F32 = np.log(q / (1.0 - q)).astype(np.float32)
    return out


def knn_mean(basis: F32, values: F32, emb: F32, k: int) -> F32:
    """Mean of `values` over the k rows of `basis` (unit embeddings) nearest to each row of
    `emb` by cosine similarity."""
    rows = np.atleast_2d(emb).astype(np.float32)
    if len(rows) <= 8:  # per request: einsum's own loop, not BLAS (OpenBLAS threads a
        # 2,000 x 384 product, and on a busy machine that cost 0.8-1.9 ms instead of 0.25)
        sim = np.stack([np.einsum("ij,j->i", basis, row) for row in rows])
    else:
        sim = rows @ basis.T
    top = min(k, sim.shape[1])
    idx = np.argpartition(-sim, top - 1, axis=1)[:, :top]
    out: F32 = values[idx].mean(axis=1).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class Adapter:
    weights: F32  # (3 + E,) per term: prior, E public experts, in-domain expert, kNN
    centre: F32  # (3 + E,)
    spread: F32  # (3 + E,)
    expert: DenseModel
    basis: F32  # (m, 384) unit embeddings of the labelled prompts
    values: F32  # (m,) their gains less the mean gain
    k: int

    def terms(self, prior: F32, public: F32, x: F32) -> F32:
        """(n, 3 + E): the prior's logit, its experts' logits (`public`, (n, E)), the in-domain
        expert's output and the kNN mean for each row (terms weighted 0 are left at 0)."""
        x2 = np.atleast_2d(x).astype(np.float32)
        zero = np.zeros(len(x2), np.float32)
        expert = self.expert.logits(x2) if self.weights[-2] else zero
        knn = zero
        if self.weights[-1]:
            knn = knn_mean(self.basis, self.values, x2[:, :EMBEDDING_DIMS], self.k)
        public = np.asarray(public, np.float32).reshape(len(x2), -1)
        first = logit(np.asarray(prior, np.float32))[:, None]
        return np.concatenate([first, public, expert[:, None], knn[:, None]], axis=1)

    def apply(self, prior: F32, public: F32, x: F32) -> F32:
        """The adapted score of each row, from the prior's score, its experts' logits and the
        feature row."""
        z = (self.terms(prior, public, x) - self.centre) / self.spread
        blend = np.clip(z @ self.weights, -30.0, 30.0)
        out: F32 = (1.0 / (1.0 + np.exp(-blend))).astype(np.float32)
        return out

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        out: dict[str, npt.NDArray[np.generic]] = {
            "ad_weights": self.weights, "ad_centre": self.centre, "ad_spread": self.spread,
            "ad_basis": self.basis.astype(np.float16), "ad_values": self.values,
            "ad_k": np.asarray(self.k, np.int64),
        }  # fmt: skip
        out.update({f"ad_expert_{k}": v for k, v in self.expert.arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, npt.NDArray[np.generic]]) -> "Adapter | None":
        if "ad_weights" not in data:
            return None
        f32 = np.float32
        prefix = "ad_expert_"
        expert = DenseModel.from_arrays(
            {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}
        )
        return cls(data["ad_weights"].astype(f32), data["ad_centre"].astype(f32),
                   data["ad_spread"].astype(f32), expert, data["ad_basis"].astype(f32),
                   data["ad_values"].astype(f32), int(data["ad_k"]))  # fmt: skip
