"""Adapter variants measured on the protocol and not adopted (`protocol --adapter-variant`).

Each returns a scorer of the held-out rows: (prior scores, feature rows) -> scores. The
shipped adapter (lab/adapt.py) is the base; the variants either add one out-of-fold term to
its non-negative blend, or wrap it:

- small-fails: + a ridge term on whether the small tier failed (1 - q_small);
- pair: + P(large acceptable) - P(small acceptable), two logistic regressions (C by
  out-of-fold APGR among 0.001 / 0.01 / 0.1) on the standardised embedding and length;
- propagation: + label propagation over the kNN graph (k 10, alpha 0.8, 20 steps) of the
  labelled and the *unlabelled* prompts of the deployment (transductive: a deployment sees
  all its prompts), normalised by the propagated labelled mass, read at a prompt's k
  nearest graph nodes;
- clusters: + the shrunk mean gain (sum / (count + 5)) of the labelled prompts in the
  prompt's k-means cluster (8 clusters of the labelled and unlabelled prompts);
- shrink: the in-domain terms' weights times n / (n + 300), the prior's kept;
- bagged: the mean logit of 5 adapters fitted on 5 inner fold splits;
- gated: the adapter only when its nested out-of-fold APGR on the labels beats the prior's.
"""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from gateway.router.adapter import EMBEDDING_DIMS, knn_mean, logit
from gateway.router.lab import adapt
from gateway.router.lab.metrics import Outcomes, apgr
from gateway.router.lab.training import column_mask

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Scorer = Callable[[F64, F32], F64]
# labelled rows (x, gain, q_small, q_large) of the training part, query rows, the unlabelled
# pool -> {hyper-parameter: term of the query rows}
Term = Callable[[F32, F64, F64, F64, F32, F32], dict[float, F64]]
VARIANTS = ("small-fails", "pair", "propagation", "clusters", "shrink", "bagged", "gated")


def _unit(x: F32) -> F32:
    emb = x[:, :EMBEDDING_DIMS].astype(np.float32)
    out: F32 = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    return out


def small_fails(x: F32, gain: F64, qs: F64, ql: F64, query: F32, pool: F32) -> dict[float, F64]:
    models = adapt.ridge(x, 1.0 - qs, adapt.ALPHAS)
    return {
        a: m.logits(query).astype(np.float64) for a, m in zip(adapt.ALPHAS, models, strict=True)
    }


def pair(x: F32, gain: F64, qs: F64, ql: F64, query: F32, pool: F32) -> dict[float, F64]:
    from sklearn.linear_model import LogisticRegression

    mask = column_mask(x.shape[1], adapt.EXPERT_COLUMNS)
    mean, scale = x[:, mask].mean(0), np.maximum(x[:, mask].std(0), 1e-6)
    z, zq = (x[:, mask] - mean) / scale, (query[:, mask] - mean) / scale
    out: dict[float, F64] = {}
    for c in (0.001, 0.01, 0.1):
        probs = []
        for q in (qs, ql):
            y = np.r_[np.ones(len(q)), np.zeros(len(q))]
            w = np.r_[q, 1.0 - q] + 1e-9
            if len(np.unique(y[w > 1e-6])) < 2:
                probs.append(np.full(len(query), 0.5))
                continue
            model = LogisticRegression(C=c, max_iter=300)
            model.fit(np.r_[z, z], y, sample_weight=w)
            probs.append(model.predict_proba(zq)[:, 1])
        out[c] = np.asarray(probs[1] - probs[0], np.float64)
    return out


def propagation(
    x: F32, gain: F64, qs: F64, ql: F64, query: F32, pool: F32, k: int = 10
) -> dict[float, F64]:
    nodes = np.concatenate([_unit(x), _unit(pool)])
    sim = nodes @ nodes.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    labels = np.zeros(len(nodes))
    labels[: len(x)] = gain - gain.mean()
    mass = np.zeros(len(nodes))
    mass[: len(x)] = 1.0
    f, g = labels.copy(), mass.copy()
    for _ in range(20):
        f = 0.2 * labels + 0.8 * f[near].mean(1)
        g = 0.2 * mass + 0.8 * g[near].mean(1)
    value = f / np.maximum(g, 1e-3)
    seen = np.argpartition(-(_unit(query) @ nodes.T), k - 1, axis=1)[:, :k]
    return {0.0: np.asarray(value[seen].mean(1), np.float64)}


def clusters(
    x: F32, gain: F64, qs: F64, ql: F64, query: F32, pool: F32, n: int = 8
) -> dict[float, F64]:
    from sklearn.cluster import KMeans

    nodes = np.concatenate([_unit(x), _unit(pool)])
    sample = np.random.default_rng(0).choice(len(nodes), min(len(nodes), 3000), replace=False)
    km = KMeans(n, n_init=1, random_state=0).fit(nodes[sample])
    own, theirs = km.predict(_unit(x)), km.predict(_unit(query))
    total = np.bincount(own, gain - gain.mean(), n)
    count = np.bincount(own, None, n)
    return {0.0: np.asarray((total / (count + 5.0))[theirs], np.float64)}


TERMS: dict[str, Term] = {"small-fails": small_fails, "pair": pair,
                          "propagation": propagation, "clusters": clusters}  # fmt: skip


def with_term(
    term: Term, prior: F64, x: F32, qs: F64, ql: F64, groups: Sequence[str], seed: int,
    pool: F32,
) -> Scorer:  # fmt: skip
    """The shipped adapter's terms plus `term`, blended by NNLS on out-of-fold terms."""
    gain = ql - qs
    folds = adapt.group_folds(groups, adapt.FOLDS, seed)
    base = adapt.oof_terms(prior, np.zeros((len(x), 0)), x, gain, folds)
    extra: dict[float, F64] = {}
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        values = term(x[train], gain[train], qs[train], ql[train], x[test],
                      np.concatenate([x[test], pool]))  # fmt: skip
        for hyper, v in values.items():
            extra.setdefault(hyper, np.zeros(len(x)))[test] = v
    out = Outcomes(np.zeros(len(gain)), gain)
    alpha = max(adapt.ALPHAS, key=lambda a: apgr(base.expert[a], out))
    k = max(adapt.K_GRID, key=lambda kk: apgr(base.knn[kk], out))
    hyper = max(extra, key=lambda h: apgr(extra[h], out))
    columns = [base.prior, base.expert[alpha], base.knn[k], extra[hyper]]
    stats = [(float(c.mean()), max(float(c.std()), 1e-9)) for c in columns]
    z = np.stack([(c - s[0]) / s[1] for c, s in zip(columns, stats, strict=True)], axis=1)
    coef = adapt.nnls(z, gain - gain.mean())
    if not coef.any():
        coef[0] = 1.0
    expert = adapt.ridge(x, gain, [alpha])[0]
    basis, centred = _unit(x), (gain - gain.mean()).astype(np.float32)

    def score(prior_rows: F64, rows: F32) -> F64:
        fresh = term(x, gain, qs, ql, rows, pool)[hyper]
        terms = [logit(prior_rows.astype(np.float32)).astype(np.float64),
                 expert.logits(rows).astype(np.float64),
                 knn_mean(basis, centred, _unit(rows), k).astype(np.float64), fresh]  # fmt: skip
        total = np.zeros(len(rows))
        for w, t, (centre, spread) in zip(coef, terms, stats, strict=True):
            total += w * (t - centre) / spread
        return total

    return score


def _shipped(prior: F64, x: F32, gain: F64, groups: Sequence[str], seed: int) -> Scorer:
    adapter, _ = adapt.fit_adapter(prior, np.zeros((len(x), 0)), x, gain, groups, seed)
    return lambda p, rows: adapt.adapted_scores(p, np.zeros((len(rows), 0)), adapter, rows)


def fit_variant(
    name: str, prior: F64, x: F32, qs: F64, ql: F64, groups: Sequence[str], seed: int,
    pool: F32,
) -> Scorer:  # fmt: skip
    """A scorer of held-out rows after adapting to the labelled rows (`pool`: the
    deployment's unlabelled prompts, for the transductive variants)."""
    gain = ql - qs
    if name in TERMS:
        return with_term(TERMS[name], prior, x, qs, ql, groups, seed, pool)
    if name == "shrink":
        adapter, _ = adapt.fit_adapter(prior, np.zeros((len(x), 0)), x, gain, groups, seed)
        weights = adapter.weights.copy()
        if weights[0] > 0:
            weights[1:] *= len(x) / (len(x) + 300.0)
        shrunk = type(adapter)(weights, adapter.centre, adapter.spread, adapter.expert,
                               adapter.basis, adapter.values, adapter.k)  # fmt: skip
        return lambda p, rows: adapt.adapted_scores(p, np.zeros((len(rows), 0)), shrunk, rows)
    if name == "bagged":
        scorers = [_shipped(prior, x, gain, groups, seed * 100 + b) for b in range(5)]

        def bagged(p: F64, rows: F32) -> F64:
            logits = [logit(s(p, rows).astype(np.float32)) for s in scorers]
            out: F64 = np.mean(logits, axis=0).astype(np.float64)
            return out

        return bagged
    if name == "gated":
        oof, _ = adapt.cross_validate(prior, np.zeros((len(x), 0)), x, gain, groups, seed)
        out = Outcomes(np.zeros(len(gain)), gain)
        if apgr(oof, out) <= apgr(prior, out):
            return lambda p, rows: p
        return _shipped(prior, x, gain, groups, seed)
    raise ValueError(f"unknown adapter variant {name!r}; known: {', '.join(VARIANTS)}")
