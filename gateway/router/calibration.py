"""Turning a routing goal into a score threshold (route to large when score >= threshold).

Two goals: a target share of large calls, or a quality floor (a fraction of the all-large
quality). A `Calibration` holds what both need, measured on data:
- `score_quantiles`: the scorer's score at quantiles 0, 0.01, ..., 1 of a prompt population;
  the threshold for large share p is the (1 - p) quantile;
- `quality_curve`: for large shares 0, 0.01, ..., 1, the quality reached relative to all-large
  (routing the highest scores to large). A floor f needs the smallest share whose ratio >= f.
The artifact's calibration uses the public sets, each set weighted equally, with out-of-fold
scores for the quality curve; `frugal router calibrate --input` recomputes it on your prompts.
Fitting one from scores is `lab/calibrate.py`; serving only reads it.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
GRID = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True, slots=True)
class Calibration:
    score_quantiles: tuple[float, ...]
    quality_curve: tuple[float, ...] | None = None

    def threshold_for_share(self, share: float) -> float:
        """Score threshold that sends about `share` (0..1) of the prompts to large."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("target large share must be within 0..1")
        if share <= 0.0:
            return float(np.nextafter(self.score_quantiles[-1], np.inf))
        return float(np.interp(1.0 - share, GRID, np.asarray(self.score_quantiles)))

    def share_for_quality(self, floor: float) -> float:
        """Smallest large share whose quality reaches `floor` x all-large quality."""
        if self.quality_curve is None:
            raise ValueError("this calibration has no quality data (it needs labelled examples)")
        curve = np.asarray(self.quality_curve)
        hits = np.flatnonzero(curve >= floor - 1e-12)
        return float(GRID[hits[0]]) if len(hits) else 1.0

    def threshold_for_quality(self, floor: float) -> float:
        return self.threshold_for_share(self.share_for_quality(floor))

    def to_json(self) -> dict[str, Any]:
        return {"score_quantiles": list(self.score_quantiles), "quality_curve":
                None if self.quality_curve is None else list(self.quality_curve)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Calibration":
        curve = data.get("quality_curve")
        return cls(tuple(data["score_quantiles"]), None if curve is None else tuple(curve))
