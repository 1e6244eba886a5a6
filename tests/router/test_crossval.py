import numpy as np

from gateway.router.lab.crossval import assign_folds, set_weights
from gateway.router.lab.examples import Example


def _ex(dataset: str, group: str) -> Example:
    return Example(dataset, ({"role": "user", "content": group},), 0.0, 1.0, group=group)


def test_groups_stay_together_and_folds_balance() -> None:
    examples = [_ex("mmlu", f"subject{i % 7}") for i in range(70)]
    examples += [_ex("gsm8k", str(i)) for i in range(50)]
    folds = assign_folds(examples, k=5)
    assert np.array_equal(folds, assign_folds(examples, k=5))  # deterministic
    by_group: dict[str, set[int]] = {}
    for e, f in zip(examples[:70], folds[:70], strict=True):
        by_group.setdefault(e.group, set()).add(int(f))
    assert all(len(v) == 1 for v in by_group.values())
    assert np.bincount(folds[70:], minlength=5).tolist() == [10] * 5


def test_set_weights() -> None:
    examples = [_ex("a", str(i)) for i in range(4)] + [_ex("b", "x")]
    w = set_weights(examples, 1.0)
    assert w[:4].sum() == w[4:].sum()
    assert (set_weights(examples, 0.0) == 1.0).all()


def test_every_compared_family_learns_a_separable_signal() -> None:
    """Out-of-fold scores of each family (served or compared only) rank the prompts that need
    the large model above the others."""
    from gateway.router.features import FEATURE_NAMES
    from gateway.router.lab.crossval import out_of_fold
    from gateway.router.lab.training import Spec

    rng = np.random.default_rng(0)
    n = 400
    hard = rng.random(n) < 0.4
    emb = rng.normal(size=(n, 384)).astype(np.float32)
    emb[:, 0] += np.where(hard, 6.0, -6.0)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    x = np.concatenate([emb, rng.normal(size=(n, len(FEATURE_NAMES)))], axis=1)
    x = x.astype(np.float32)
    gain = np.where(hard, 1.0, 0.0)
    folds = np.arange(n) % 5
    sets = np.array(["a", "b"])[np.arange(n) % 2]
    for spec in (
        Spec("logreg", {"C": 0.1}),
        Spec("knn", {"k": 20}, columns="embedding"),
        Spec("gbm", {"max_iter": 50}),
        Spec("mixture", {"expert_min_rows": 100, "expert_C": 0.1, "general_C": 0.1}),
    ):
        scores = out_of_fold(spec, x, gain, folds, None, sets)
        assert np.mean(scores[hard][:, None] > scores[~hard][None, :]) > 0.9, spec.kind
