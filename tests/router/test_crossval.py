import numpy as np

from gateway.router.crossval import assign_folds, set_weights
from gateway.router.examples import Example


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
