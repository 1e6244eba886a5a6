import numpy as np
import pytest

from gateway.router.lab import metrics as m
from gateway.router.lab.evaluation import baselines, bootstrap


def _outcomes() -> m.Outcomes:
    rng = np.random.default_rng(1)
    qs = (rng.random(2000) < 0.5).astype(float)
    ql = (rng.random(2000) < 0.8).astype(float)
    return m.Outcomes(qs, ql, np.full(2000, 1.0), np.full(2000, 10.0))


def test_tiny_case_by_hand() -> None:
    # gains: +1, 0, -1, 0 -> the oracle takes the +1 first and never the -1.
    out = m.Outcomes(np.array([0.0, 1, 1, 0]), np.array([1.0, 1, 0, 0]))
    scores = np.array([0.9, 0.5, 0.1, 0.4])
    assert m.quality_curve(scores, out).tolist() == [0.5, 0.75, 0.75, 0.75, 0.5]
    # all-large quality equals all-small quality: PGR is defined as 1.
    assert m.apgr(scores, out) == 1.0


def test_pgr_endpoints_and_cpt() -> None:
    out = m.Outcomes(np.array([0.0, 0, 0, 0]), np.array([1.0, 1, 0, 0]))
    scores = np.array([0.9, 0.1, 0.8, 0.2])  # order: 0 (+1), 2 (0), 3 (0), 1 (+1)
    assert m.pgr_curve(scores, out).tolist() == [0.0, 0.5, 0.5, 0.5, 1.0]
    assert m.cpt(scores, out, 0.5) == 0.25
    assert m.cpt(scores, out, 0.8) == 1.0
    assert m.apgr(scores, out) == pytest.approx((0.25 + 0.5 + 0.5 + 0.75) / 4)


def test_oracle_beats_random_and_random_is_half() -> None:
    out = _outcomes()
    oracle = m.apgr(m.oracle_scores(out), out)
    rng = np.random.default_rng(2)
    random_apgr = np.mean([m.apgr(rng.random(2000), out) for _ in range(50)])
    assert random_apgr == pytest.approx(0.5, abs=0.02)
    assert oracle > 0.9
    assert m.cpt(m.oracle_scores(out), out, 0.5) < 0.5


def test_inverse_oracle_is_worst() -> None:
    out = _outcomes()
    assert m.apgr(-m.oracle_scores(out), out) < 0.1


def test_quality_floor_share_and_cost() -> None:
    out = m.Outcomes(np.zeros(4), np.ones(4), np.ones(4), np.full(4, 3.0))
    scores = np.array([0.4, 0.3, 0.2, 0.1])
    assert m.share_for_quality(scores, out, 0.5) == 0.5
    usd, frac = m.cost_for_quality(scores, out, 0.5)
    assert usd == pytest.approx(1000 * (3 + 3 + 1 + 1) / 4)
    assert frac == pytest.approx(8 / 12)
    assert m.random_share_for_quality(out, 0.5) == pytest.approx(0.5)


def test_bootstrap_ci_brackets_value_and_baselines() -> None:
    out = _outcomes()
    scores = m.oracle_scores(out) + np.random.default_rng(3).normal(0, 1.0, 2000)
    result = bootstrap(scores, out, n_boot=50)
    for stat in result.values():
        assert stat["lo"] <= stat["value"] <= stat["hi"] or stat["lo"] == stat["hi"]
    base = baselines(out)
    assert base["random"]["apgr"] == 0.5
    assert base["oracle"]["apgr"] > result["apgr"]["value"] > 0.5
    assert "usd_per_1k_at_95" in result
