"""A small verifier artifact for gateway tests: it reads only what a test controls (the mean
token log-probability and a wrong arithmetic step), so each test knows its verdict."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.router.verifier import Mix, VerifierModel

Spec = tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...], float]
# P(large better) = sigmoid(-4 * lp_mean - 2 + 6 * arith_wrong): an answer whose tokens average
# log-probability -0.05 passes (0.13); -2.0 fails (0.998); a wrong step fails.
DEFAULT: Spec = (("logprob", "format"), ("lp_mean", "arith_wrong"), (-4.0, 6.0), -2.0)


def write_verifier(
    folder: Path, name: str = "verifier-test", spec: Spec = DEFAULT, mix: Mix | None = None
) -> Path:
    """A verifier artifact (groups, signal columns, weights, bias; no standardisation), with
    a recorded `mix` when given."""
    groups, columns, weights, bias = spec
    n = len(columns)
    meta: dict[str, Any] = {"note": "test verifier"}
    if mix is not None:
        meta["mix"] = mix.to_json()
    model = VerifierModel(name, groups, columns, np.zeros(n), np.ones(n), np.array(weights),
                          bias, 0.5, meta)  # fmt: skip
    path = folder / f"{name}.json"
    path.write_text(json.dumps(model.to_json()))
    return path


@pytest.fixture(scope="session")
def verifier_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_verifier(tmp_path_factory.mktemp("verifier"))
