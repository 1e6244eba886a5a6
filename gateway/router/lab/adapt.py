"""Fitting the in-domain adapter (adapter.py) on a deployment's labels, and measuring it.

The public prior is kept as it is (its weights and the public embeddings are not touched);
only the labelled rows are embedded (through the usual embedding cache). On those rows:
1. out-of-fold terms (grouped folds over the labelled rows): the in-domain expert for every
   ridge penalty of `ALPHAS`, the kNN mean for every k of `K_GRID` (each fold's terms come
   from the other folds' rows only), and the prior's logit;
2. the blend: alpha and k whose term alone ranks the labels best (out-of-fold APGR), then
   the weights by non-negative least squares of the gain on the standardised terms (picking
   the best of ~250 blends by APGR instead did worse on most RouterBench pairs tried);
3. the final terms refitted on every labelled row with that choice.
`cross_validate` wraps all of it in an outer fold loop, so the reported in-domain figures are
nested out-of-fold: no label scores a prompt it belongs to, nor chooses the blend that does.
Ridge regression (closed form, one SVD per fold for every penalty) keeps 2,000 labels well
under a second per fit; the whole nested run is a few seconds.
"""

import contextlib
import itertools
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.router.adapter import EMBEDDING_DIMS, Adapter, knn_mean, logit
from gateway.router.lab.metrics import Outcomes, apgr
from gateway.router.lab.training import column_mask
from gateway.router.model import DenseModel

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

ALPHAS: tuple[float, ...] = (30.0, 100.0, 300.0, 1000.0)  # ridge penalties (standardised x)
K_GRID: tuple[int, ...] = (10, 30)
WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)  # expert and kNN weights (prior: 1 or 0)
FOLDS = 5
EXPERT_COLUMNS = "embedding+length"
MIN_ROWS = 20  # fewer labels than this: the adapter is the prior alone
MAX_BASIS = 5000  # labelled prompts kept for the kNN term at serve time


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while adapting: its matrices are small (n x 385), and on a busy
    2-core machine OpenBLAS's threads spin against each other (measured: a 1,031-row SVD took
    21 s with the default threads under load, 0.5 s on one)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # (sklearn's)

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True, slots=True)
class Choice:
    alpha: float
    k: int
    weights: tuple[float, ...]  # prior, the prior's E experts, in-domain expert, kNN
    inner_apgr: float

    def describe(self) -> dict[str, Any]:
        public = [f"public_{i}" for i in range(len(self.weights) - 3)]
        names = ["prior", *public, "expert", "knn"]
        weights = dict(zip(names, self.weights, strict=True))
        return {"ridge_alpha": self.alpha, "knn_k": self.k, "inner_apgr": self.inner_apgr,
                "weights": weights}  # fmt: skip


def group_folds(groups: Sequence[str], k: int = FOLDS, seed: int = 0) -> I64:
    """A fold per row, the same for every row of a group (a hash of the group and the seed)."""
    return np.array([zlib.crc32(f"{seed}\x1f{g}".encode()) % k for g in groups], dtype=np.int64)


def ridge(x: F32, gain: F64, alphas: Sequence[float]) -> list[DenseModel]:
    """Ridge regressions of `gain` on the standardised expert columns, one per penalty."""
    mask = column_mask(x.shape[1], EXPERT_COLUMNS)
    mean = x.mean(axis=0).astype(np.float32)
    scale = np.maximum(x.std(axis=0), 1e-6).astype(np.float32)
    scale[~mask] = 1.0
    z = ((x[:, mask] - mean[mask]) / scale[mask]).astype(np.float64)
    target = gain - gain.mean()
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    uty = u.T @ target
    models = []
    for alpha in alphas:
        w = np.zeros((x.shape[1], 1), np.float32)
        w[mask, 0] = vt.T @ (s / (s**2 + alpha) * uty)
        bias = np.array([gain.mean()], np.float32)
        models.append(DenseModel(mean, scale, (w,), (bias,)))
    return models


def _unit(emb: F32) -> F32:
    out: F32 = (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)).astype(
        np.float32
    )
    return out


def _zscore(values: F64) -> tuple[float, float]:
    spread = float(values.std())
    return float(values.mean()), spread if spread > 1e-9 else 1.0


@dataclass(frozen=True, slots=True)
class Terms:
    """Out-of-fold terms of the labelled rows."""

    prior: F64
    public: F64  # (n, E) the prior's expert logits
    expert: dict[float, F64]
    knn: dict[int, F64]


def oof_terms(prior_scores: F64, public: F64, x: F32, gain: F64, folds: I64) -> Terms:
    expert = {a: np.zeros(len(x)) for a in ALPHAS}
    knn = {k: np.zeros(len(x)) for k in K_GRID}
    emb = _unit(x[:, :EMBEDDING_DIMS])
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        if train.sum() < 2:
            continue
        for alpha, model in zip(ALPHAS, ridge(x[train], gain[train], ALPHAS), strict=True):
            expert[alpha][test] = model.logits(x[test])
        values = (gain[train] - gain[train].mean()).astype(np.float32)
        for k in K_GRID:
            knn[k][test] = knn_mean(emb[train], values, emb[test], k)
    prior = logit(prior_scores.astype(np.float32)).astype(np.float64)
    return Terms(prior, np.asarray(public, np.float64), expert, knn)


def _standard(values: F64) -> F64:
    centre, spread = _zscore(values)
    out: F64 = (values - centre) / spread
    return out


def choose(terms: Terms, gain: F64, use_public: bool = False) -> Choice:
    """The ridge penalty and k whose term alone ranks the labels best (out-of-fold APGR), then
    the blend weights by non-negative least squares of the gain on the standardised terms
    (a few coefficients fitted, rather than the best of many blends picked: less noise).
    Without `use_public` the prior's experts get no weight of their own."""
    out = Outcomes(np.zeros(len(gain)), gain)
    alpha = max(ALPHAS, key=lambda a: apgr(terms.expert[a], out))
    k = max(K_GRID, key=lambda kk: apgr(terms.knn[kk], out))
    n_public = terms.public.shape[1]
    columns = [terms.prior, *terms.public.T, terms.expert[alpha], terms.knn[k]]
    z = np.stack([_standard(c) for c in columns], axis=1)
    usable = np.ones(z.shape[1], dtype=bool)
    usable[1 : 1 + n_public] = use_public
    coef = np.zeros(z.shape[1])
    coef[usable] = nnls(z[:, usable], gain - gain.mean())
    if not coef.any():
        coef[0] = 1.0
    weights = tuple(float(c) for c in coef / coef.max())
    return Choice(alpha, k, weights, apgr(z @ coef, out))


def nnls(a: F64, b: F64) -> F64:
    """Non-negative least squares for a few columns: the best unconstrained fit over every
    subset of columns whose coefficients are all >= 0 (zeros if none is)."""
    best, best_err = np.zeros(a.shape[1]), float(b @ b)
    for size in range(1, a.shape[1] + 1):
        for cols in itertools.combinations(range(a.shape[1]), size):
            c, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            err = float(np.sum((a[:, cols] @ c - b) ** 2))
            if (c >= 0).all() and err < best_err - 1e-12:
                best = np.zeros(a.shape[1])
                best[list(cols)] = c
                best_err = err
    return best


def fit_adapter(
    prior_scores: F64,
    public: F64,
    x: F32,
    gain: F64,
    groups: Sequence[str],
    seed: int = 0,
    use_public: bool = False,
) -> tuple[Adapter, Choice]:
    """The adapter for these labelled rows (`prior_scores`: the prior's scores of them,
    `public`: its experts' logits, (n, E))."""
    n_terms = 3 + public.shape[1]
    if len(x) < MIN_ROWS:
        weights = (1.0,) + (0.0,) * (n_terms - 1)
        return _prior_only(x, n_terms), Choice(ALPHAS[0], K_GRID[0], weights, float("nan"))
    terms = oof_terms(prior_scores, public, x, gain, group_folds(groups, FOLDS, seed))
    choice = choose(terms, gain, use_public)
    expert = ridge(x, gain, [choice.alpha])[0]
    columns = [terms.prior, *terms.public.T, terms.expert[choice.alpha], terms.knn[choice.k]]
    stats = [_zscore(c) for c in columns]
    keep = np.arange(len(x))
    if len(x) > MAX_BASIS:  # the kNN base: a seeded sample (the lookup costs ~0.1 ms per 1k)
        keep = np.sort(np.random.default_rng(seed).choice(len(x), MAX_BASIS, replace=False))
    adapter = Adapter(
        weights=np.asarray(choice.weights, np.float32),
        centre=np.asarray([s[0] for s in stats], np.float32),
        spread=np.asarray([s[1] for s in stats], np.float32),
        expert=expert,
        basis=_unit(x[keep, :EMBEDDING_DIMS]).astype(np.float16).astype(np.float32),
        values=(gain[keep] - gain.mean()).astype(np.float32),
        k=choice.k,
    )
    return adapter, choice


def _prior_only(x: F32, n_terms: int) -> Adapter:
    n_inputs = x.shape[1]
    zeros = np.zeros(n_inputs, np.float32)
    expert = DenseModel(zeros, np.ones(n_inputs, np.float32), (np.zeros((n_inputs, 1),
                        np.float32),), (np.zeros(1, np.float32),))  # fmt: skip
    weights = np.zeros(n_terms, np.float32)
    weights[0] = 1.0
    return Adapter(weights, np.zeros(n_terms, np.float32), np.ones(n_terms, np.float32),
                   expert, np.zeros((1, EMBEDDING_DIMS), np.float32), np.zeros(1, np.float32),
                   1)  # fmt: skip


def adapted_scores(prior_scores: F64, public: F64, adapter: Adapter, x: F32) -> F64:
    return adapter.apply(prior_scores.astype(np.float32), public.astype(np.float32), x).astype(
        np.float64
    )


def cross_validate(
    prior_scores: F64,
    public: F64,
    x: F32,
    gain: F64,
    groups: Sequence[str],
    seed: int = 0,
    use_public: bool = False,
) -> tuple[F64, list[dict[str, Any]]]:
    """Nested out-of-fold adapted scores of the labelled rows, and each outer fold's choice."""
    folds = group_folds(groups, FOLDS, seed + 1000)
    scores = np.zeros(len(x))
    chosen: list[dict[str, Any]] = []
    group_list = list(groups)
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        inner_groups = [g for g, keep in zip(group_list, train, strict=True) if keep]
        adapter, choice = fit_adapter(prior_scores[train], public[train], x[train], gain[train],
                                      inner_groups, seed, use_public)  # fmt: skip
        scores[test] = adapted_scores(prior_scores[test], public[test], adapter, x[test])
        chosen.append({"fold": int(fold), **choice.describe()})
    return scores, chosen
