"""The training/evaluation corpus: examples, their feature rows, gains, folds and weights."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.router.embedder import MiniLMEmbedder
from gateway.router.lab import public_data
from gateway.router.lab.crossval import assign_folds, set_weights
from gateway.router.lab.embeddings import build_matrix
from gateway.router.lab.examples import Example, read_logs
from gateway.router.lab.metrics import Outcomes

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Corpus:
    examples: Sequence[Example]
    x: npt.NDArray[np.float32]
    folds: npt.NDArray[np.int64]

    @property
    def gain(self) -> F64:
        return np.array([e.gain for e in self.examples], dtype=np.float64)

    @property
    def set_of_row(self) -> npt.NDArray[np.str_]:
        return np.array([e.dataset for e in self.examples])

    @property
    def sets(self) -> list[str]:
        return list(dict.fromkeys(e.dataset for e in self.examples))

    def mask(self, name: str) -> npt.NDArray[np.bool_]:
        return np.array([e.dataset == name for e in self.examples])

    def outcomes(self, rows: npt.NDArray[np.bool_]) -> Outcomes:
        chosen = [e for e, keep in zip(self.examples, rows, strict=True) if keep]
        qs = np.array([e.q_small for e in chosen], dtype=np.float64)
        ql = np.array([e.q_large for e in chosen], dtype=np.float64)
        if all(e.cost_small is not None and e.cost_large is not None for e in chosen):
            cs = np.array([e.cost_small for e in chosen], dtype=np.float64)
            cl = np.array([e.cost_large for e in chosen], dtype=np.float64)
            return Outcomes(qs, ql, cs, cl)
        return Outcomes(qs, ql)

    def weights(self, power: float) -> F64:
        return set_weights(self.examples, power)


def load_examples(
    data_dir: Path | None, sets: Sequence[str], logs: Sequence[Path] = ()
) -> list[Example]:
    examples: list[Example] = []
    for name in sets:
        examples += public_data.load(name, data_dir)
    for path in logs:
        examples += read_logs(path, dataset=f"logs:{path.name}")
    return examples


def build(examples: Sequence[Example], embedder: MiniLMEmbedder, use_cache: bool = True) -> Corpus:
    """Feature rows are built per data set so that each set's embedding cache is reusable."""
    names = list(dict.fromkeys(e.dataset for e in examples))
    x = np.zeros((len(examples), 0), dtype=np.float32)
    parts, index = [], []
    for name in names:
        rows = [i for i, e in enumerate(examples) if e.dataset == name]
        parts.append(build_matrix([examples[i] for i in rows], embedder, use_cache))
        index += rows
    if parts:
        x = np.empty((len(examples), parts[0].shape[1]), dtype=np.float32)
        x[index] = np.concatenate(parts)
    return Corpus(examples, x, assign_folds(examples))
