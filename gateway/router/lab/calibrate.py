"""Fitting a `Calibration` from scores (and, for the quality curve, labelled outcomes)."""

import numpy as np
import numpy.typing as npt

from gateway.router.calibration import GRID, Calibration

F64 = npt.NDArray[np.float64]


def weighted_quantiles(scores: F64, weights: F64) -> tuple[float, ...]:
    order = np.argsort(scores, kind="stable")
    cum = np.cumsum(weights[order])
    cum = (cum - 0.5 * weights[order]) / cum[-1]
    return tuple(float(v) for v in np.interp(GRID, cum, scores[order]))


def quality_curve(scores: F64, q_small: F64, q_large: F64, weights: F64) -> tuple[float, ...]:
    """Quality relative to all-large at each large share of `GRID` (weighted prompts)."""
    order = np.argsort(-scores, kind="stable")
    w = weights[order] / weights.sum()
    gain = np.concatenate([[0.0], np.cumsum(w * (q_large - q_small)[order])])
    share = np.concatenate([[0.0], np.cumsum(w)])
    base = float((weights * q_small).sum() / weights.sum())
    top = float((weights * q_large).sum() / weights.sum())
    ratio = (base + np.interp(GRID, share, gain)) / max(top, 1e-12)
    return tuple(float(v) for v in ratio)


def calibrate(
    scores: F64,
    weights: F64 | None = None,
    labelled: tuple[F64, F64, F64] | None = None,
) -> Calibration:
    """`scores` of a prompt population; `labelled` = (scores, q_small, q_large) for the curve."""
    w = np.ones(len(scores)) if weights is None else weights
    curve = None
    if labelled is not None:
        curve = quality_curve(labelled[0], labelled[1], labelled[2], w)
    return Calibration(weighted_quantiles(scores, w), curve)
