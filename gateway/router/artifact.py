"""A trained router on disk: `<name>.npz` (weights) + `<name>.json` (everything else).

The JSON records the model family and hyper-parameters, the sha256 of the training data,
the cross-validated evaluation figures and the calibration (see calibration.py).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.router.calibration import Calibration
from gateway.router.mixture import Mixture
from gateway.router.resources import ARTIFACTS_DIR

DEFAULT_NAME = "minilm-dq8-g"  # minilm-dq8 + 1 x general difficulty (README)
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    model: Mixture
    meta: dict[str, Any]

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_json(self.meta["calibration"])

    @property
    def default_threshold(self) -> float:
        """The threshold recorded at training time (see meta["default_threshold"])."""
        return float(self.meta["default_threshold"]["threshold"])


def paths(name: str, directory: Path = ARTIFACTS_DIR) -> tuple[Path, Path]:
    return directory / f"{name}.npz", directory / f"{name}.json"


def save(artifact: Artifact, directory: Path = ARTIFACTS_DIR) -> tuple[Path, Path]:
    npz, meta = paths(artifact.name, directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact.model.save(npz)
    body = {"name": artifact.name, "format": FORMAT, **artifact.meta}
    meta.write_text(json.dumps(body, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return npz, meta


def load(name: str = DEFAULT_NAME, directory: Path = ARTIFACTS_DIR) -> Artifact:
    """Load a named artifact (a path to a .json or .npz file also works as `name`)."""
    if name.endswith((".json", ".npz")):
        directory, name = Path(name).parent, Path(name).stem
    npz, meta_path = paths(name, directory)
    if not npz.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"router artifact {name!r} not found in {directory}")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: unsupported artifact format {meta.get('format')!r}")
    return Artifact(name=name, model=Mixture.load(npz), meta=meta)
