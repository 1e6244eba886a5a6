"""Build the scorer a route asks for, and the calibration that goes with it.

Names: `heuristic`; `default` or `minilm-v1` (the learned router shipped in `artifacts/`); any
other artifact name in `artifacts/`, or a path to an artifact's .json/.npz file. Learned scorers
are loaded once per name and shared (they are thread-safe).
"""

import threading
from pathlib import Path

from gateway.router import artifact as artifacts
from gateway.router.base import Scorer
from gateway.router.calibration import Calibration
from gateway.router.heuristic import HeuristicScorer
from gateway.router.resources import ARTIFACTS_DIR

_ALIASES = {"default": artifacts.DEFAULT_NAME}
_lock = threading.Lock()
_learned: dict[str, Scorer] = {}


def _artifact_name(name: str) -> str:
    return _ALIASES.get(name, name)


def _known() -> list[str]:
    names = sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json"))
    return ["heuristic", "default", *names]


def load_scorer(name: str) -> Scorer:
    """`heuristic`, `default`, a learned artifact's name, or a path to one."""
    if name == "heuristic":
        return HeuristicScorer()
    key = _artifact_name(name)
    with _lock:
        if key not in _learned:
            from gateway.router.learned import LearnedScorer

            try:
                loaded = artifacts.load(key)
            except FileNotFoundError:
                raise ValueError(f"unknown router {name!r}; known: {', '.join(_known())}") from None
            _learned[key] = LearnedScorer(loaded)
        return _learned[key]


def calibration(name: str = "default") -> Calibration:
    """The calibration recorded in a learned artifact (no model or tokenizer is loaded)."""
    return artifacts.load(_artifact_name(name)).calibration


def threshold_for_share(share: float, name: str = "default") -> float:
    """Threshold sending about `share` of prompts to the large tier (public-set traffic mix)."""
    return calibration(name).threshold_for_share(share)


def threshold_for_quality(floor: float, name: str = "default") -> float:
    """Threshold keeping quality >= `floor` x all-large quality (public sets, out-of-fold)."""
    return calibration(name).threshold_for_quality(floor)


def default_threshold(name: str = "default") -> float:
    """The artifact's recorded default threshold (see its JSON `default_threshold`)."""
    return artifacts.load(_artifact_name(name)).default_threshold


def artifact_path(name: str = "default") -> Path:
    return artifacts.paths(_artifact_name(name))[1]
