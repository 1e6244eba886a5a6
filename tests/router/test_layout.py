"""The serving path (what a request touches) never imports the training/evaluation lab."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import gateway.routing
from gateway.router import load_scorer
from gateway.router.loading import calibration, default_threshold
scorer = load_scorer("default")
score = scorer.score([{"role": "user", "content": "Prove that sqrt(2) is irrational."}])
calibration("default").threshold_for_share(0.3)
default_threshold()
print(json.dumps({"score": score, "lab": sorted(m for m in sys.modules
                  if m.startswith("gateway.router.lab")),
                  "sklearn": "sklearn" in sys.modules}))
"""


def test_serving_path_does_not_import_the_lab() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.0 <= result["score"] <= 1.0
    assert result["lab"] == []
    assert result["sklearn"] is False


def test_lab_modules_live_apart() -> None:
    """Offline modules sit under lab/; none of the serving modules imports them."""
    router = ROOT / "gateway" / "router"
    lab = {p.stem for p in (router / "lab").glob("*.py")}
    assert {"trainer", "training", "crossval", "public_data", "cli"} <= lab
    for path in router.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "gateway.router.lab" not in text, path.name
