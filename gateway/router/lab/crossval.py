"""Fixed cross-validation folds and out-of-fold predictions.

Folds are assigned per data set and are a pure function of the data: a set whose examples share
groups (MMLU subjects, MT-Bench questions with their two turns) gets whole groups per fold,
balanced by size (largest group first, into the smallest fold; ties by name); a set of unique
examples gets a seeded permutation. Training for fold k uses every set's other folds, so an
example is only ever scored by a model that never saw it (nor its group).
"""

import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.router.lab.baselines import fit_any
from gateway.router.lab.examples import Example
from gateway.router.lab.training import Spec

K_FOLDS = 5
I64 = npt.NDArray[np.int64]


def _grouped_folds(groups: Sequence[str], k: int) -> dict[str, int]:
    sizes = Counter(groups)
    load = [0] * k
    fold_of: dict[str, int] = {}
    for group, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        fold = min(range(k), key=lambda f: (load[f], f))
        fold_of[group] = fold
        load[fold] += size
    return fold_of


def assign_folds(examples: Sequence[Example], k: int = K_FOLDS, seed: int = 0) -> I64:
    """The fold (0..k-1) of every example."""
    by_set: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_set[example.dataset].append(i)
    folds = np.zeros(len(examples), dtype=np.int64)
    for name, rows in by_set.items():
        groups = [examples[i].group for i in rows]
        if len(set(groups)) < len(groups):
            fold_of = _grouped_folds(groups, k)
            folds[rows] = [fold_of[g] for g in groups]
        else:
            rng = np.random.default_rng(seed + zlib.crc32(name.encode()))
            rank = np.empty(len(rows), dtype=np.int64)
            rank[rng.permutation(len(rows))] = np.arange(len(rows))
            folds[rows] = rank % k
    return folds


def set_weights(examples: Sequence[Example], power: float) -> npt.NDArray[np.float64]:
    """Per-row weight n_set ** -power (0: every row counts the same; 1: every set does)."""
    counts = Counter(e.dataset for e in examples)
    return np.array([counts[e.dataset] ** -power for e in examples], dtype=np.float64)


def out_of_fold(
    spec: Spec,
    x: npt.NDArray[np.float32],
    gain: npt.NDArray[np.float64],
    folds: I64,
    weight: npt.NDArray[np.float64] | None = None,
    sets: npt.NDArray[np.str_] | None = None,
) -> npt.NDArray[np.float64]:
    """Scores where each row comes from the model trained without its fold."""
    scores = np.zeros(len(x), dtype=np.float64)
    for fold in np.unique(folds):
        test = folds == fold
        w = None if weight is None else weight[~test]
        s = None if sets is None else sets[~test]
        model = fit_any(spec, x[~test], gain[~test], w, s)
        scores[test] = model.predict(x[test])
    return scores
