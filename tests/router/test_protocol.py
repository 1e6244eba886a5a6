"""The leave-one-set-out protocol's out-of-domain prior: general difficulty, not one pair's gain."""

import csv
from pathlib import Path

import numpy as np
import pytest

from gateway.router.lab import difficulty, protocol, public_data
from gateway.router.lab.corpus import Corpus
from gateway.router.lab.crossval import assign_folds
from gateway.router.lab.examples import Example

ROUTING_DATA = Path(__file__).resolve().parents[3] / "shared" / "routing-data"
needs_data = pytest.mark.skipif(not ROUTING_DATA.is_dir(), reason="needs ../shared/routing-data")
MESSAGES = ({"role": "user", "content": "q"},)


def synthetic_corpus(seed: int = 0) -> Corpus:
    """Three sets whose small tier fails where the first input column is high (the same rule
    in every set), with each set's own noise columns."""
    rng = np.random.default_rng(seed)
    examples, rows = [], []
    for name in ("alpha", "beta", "gamma"):
        for i in range(400):
            x = rng.normal(size=404).astype(np.float32)
            hard = 1.0 / (1.0 + np.exp(-3.0 * x[0]))
            small = float(rng.random() > hard)
            large = float(rng.random() > 0.3 * hard)
            examples.append(Example(name, MESSAGES, small, large, group=f"{name}{i}"))
            rows.append(x)
    return Corpus(examples, np.stack(rows), assign_folds(examples))


def test_the_difficulty_prior_transfers_to_a_set_it_never_saw() -> None:
    corpus = synthetic_corpus()
    result = protocol.run(corpus, ns=(100,), seeds=1, n_boot=20)
    assert result["prior"] == "difficulty"
    for name in ("alpha", "beta", "gamma"):
        entry = result["sets"][name]
        assert entry["N=0"]["apgr"] > 0.6  # the shared rule, learnt on the other two sets
        assert entry["N=0"]["lo"] <= entry["N=0"]["apgr"] <= entry["N=0"]["hi"]
        assert entry["N=100"]["seeds"] == 1


def test_an_unknown_prior_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown prior"):
        protocol.prior_without(synthetic_corpus(), "alpha", "boosted")


def test_difficulty_is_small_failure_without_more_models() -> None:
    corpus = synthetic_corpus()
    expected = [1.0 - e.q_small for e in corpus.examples]
    assert difficulty.targets(corpus.examples).tolist() == expected


@needs_data
def test_routerbench_difficulty_is_the_share_of_its_models_failing() -> None:
    examples = public_data.load("rb_arc", ROUTING_DATA)
    target = difficulty.targets(examples, ROUTING_DATA)
    path = ROUTING_DATA / "routerdc/datasets/routerbench_zs" / public_data.RB_FILES["rb_arc"]
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8", newline="") as handle:
        kept = [row for row in csv.DictReader(handle) if row[public_data.RB_SMALL] != ""]
    assert len(kept) == len(examples) == len(target)
    for i in (0, len(kept) // 2, len(kept) - 1):
        scores = [float(kept[i][m]) for m in difficulty.RB_MODELS]
        assert examples[i].group == kept[i]["sample_id"]
        assert target[i] == pytest.approx(1.0 - sum(scores) / len(scores))
    # not the pair's own outcome: the two differ on some rows
    assert np.any(np.abs(target - np.array([1.0 - e.q_small for e in examples])) > 0.2)


def test_an_adapter_variant_is_measured_in_place_of_the_shipped_adapter() -> None:
    result = protocol.run(synthetic_corpus(1), ns=(100,), seeds=1, n_boot=20, variant="shrink")
    assert result["adapter_variant"] == "shrink"
    cell = result["sets"]["alpha"]["N=100"]
    assert cell["choices"] == [{"variant": "shrink"}]
    assert 0.0 <= cell["apgr"] <= 1.5


def test_an_unknown_adapter_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown adapter variant"):
        protocol.run(synthetic_corpus(), ns=(100,), seeds=1, n_boot=5, variant="magic")


def test_difficulty_weight_folds_the_difficulty_logit_into_every_expert() -> None:
    """A mixture spec with `difficulty_weight` serves as a plain mixture whose every expert's
    logit is its own plus weight x a difficulty model's (fitted on `hard`), and needs `hard`."""
    from gateway.router.lab.training import Spec, fit, fit_dense

    corpus = synthetic_corpus()
    x, gain, sets = corpus.x, corpus.gain, corpus.set_of_row
    hard = difficulty.targets(corpus.examples)
    params = {"expert_min_rows": 300, "expert_C": 0.01, "general_C": 0.01}
    plain = fit(Spec("mixture", params), x, gain, None, sets)
    spec = Spec("mixture", {**params, "difficulty_weight": 0.5, "difficulty_C": 0.01})
    mixed = fit(spec, x, gain, None, sets, hard)
    general = fit_dense(Spec("logreg", {"C": 0.01}), x, hard, None, sets)
    expected = plain.expert_logits(x) + 0.5 * general.logits(x)[:, None]
    assert np.allclose(mixed.expert_logits(x), expected, atol=1e-3)
    assert mixed._linear is not None and len(mixed.experts) == len(plain.experts) == 4
    gated = mixed.gate(x) / (1.0 + np.exp(-expected[:, list(mixed.expert_of_class)]))
    assert np.allclose(mixed.predict(x), gated.sum(1), atol=1e-4)
    with pytest.raises(ValueError, match="difficulty targets"):
        fit(spec, x, gain, None, sets)
