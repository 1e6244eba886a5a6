"""`frugal router report --png/--html` draws the frontier from a labels file; `score` uses the
verifier for lines that carry an answer; `calibrate --verifier` gives the cascade a threshold."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.router.artifact import DEFAULT_NAME
from gateway.router.lab.cli import main
from gateway.router.lab.metrics import Outcomes
from gateway.router.lab.report_frontier import Scheme, cheapest, curve


def _labels(path: Path, n: int = 80) -> Path:
    """Math questions; the small model is wrong exactly where its arithmetic is wrong."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
        wrong = i % 3 == 0
        said = a + b + (1 if wrong else 0)
        lines.append({
            "id": f"r{i}",
            "messages": [{"role": "user", "content": f"Ann has {a} pens and gets {b} more. "
                          "How many pens does she have?"}],
            "answers": {"small": f"{a} + {b} = {said}. She has {said} pens.",
                        "large": f"{a} + {b} = {a + b}. She has {a + b} pens."},
            "acceptable": {"small": not wrong, "large": True},
            "cost": {"small": 0.0001, "large": 0.004},
        })  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_report_draws_the_frontier_png_and_html(
    tmp_path: Path, verifier_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _labels(tmp_path / "labels.jsonl")
    png, page = tmp_path / "r.png", tmp_path / "r.html"
    code = main(["router", "report", "--input", str(labels), "--png", str(png), "--html",
                 str(page), "--router", "heuristic", "--verifier", str(verifier_file),
                 "--boot", "20"])  # fmt: skip
    assert code == 0
    sentence = capsys.readouterr().out.strip()
    # the verifier sees every wrong step: 23 of the 27 wrong answers escalated reach 95%;
    # 80 small calls and 23 large ones: $1.25 per 1,000, 31% of all-large's $4.00
    assert sentence.startswith("The cheapest configuration that keeps 95% of all-large quality")
    assert "cascade (verifier) with 29% of requests answered by the large tier" in sentence
    assert "$1.25 per 1,000 requests, 31% of all-large ($4.00)" in sentence
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    html = page.read_text()
    assert sentence.split(":")[0] in html and "data:image/png;base64," in html


def test_the_frontier_and_its_sentence() -> None:
    out = Outcomes(np.array([1.0, 0.0, 1.0, 0.0]), np.ones(4), np.full(4, 0.1), np.full(4, 1.0))
    c = curve(Scheme("cascade", np.array([0.1, 0.9, 0.2, 0.8])), out, n_boot=10)
    assert c.retained.tolist() == [0.5, 0.75, 1.0, 1.0, 1.0]
    assert c.usd_per_1k[2] == pytest.approx(1000 * (0.4 + 2.0) / 4)  # 4 small + 2 large
    assert (c.lo <= c.retained + 1e-12).all() and (c.hi >= c.retained - 1e-12).all()
    assert "cascade (verifier) with 50%" in cheapest({"cascade": c}, 1000.0)
    assert "60% of all-large" in cheapest({"cascade": c}, 1000.0)


def test_score_uses_the_verifier_for_lines_with_an_answer(
    tmp_path: Path, verifier_file: Path
) -> None:
    rows: list[dict[str, Any]] = [
        {"id": "bad", "prompt": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 8."},
        {"id": "good", "prompt": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7.",
         "logprobs": [-0.05, -0.05]},
        {"id": "plain", "prompt": "What is the capital of France?"},
    ]  # fmt: skip
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["router", "score", "--input", str(src), "--output", str(dst), "--router",
                 "heuristic", "--verifier", str(verifier_file)]) == 0  # fmt: skip
    out = {r["id"]: r for r in map(json.loads, dst.read_text().splitlines())}
    assert out["bad"]["score"] > 0.95 and out["good"]["score"] < 0.2
    assert out["bad"]["verifier"] == "verifier-test" and "verifier" not in out["plain"]


def test_calibrate_gives_the_cascade_a_threshold(
    tmp_path: Path, verifier_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _labels(tmp_path / "labels.jsonl")
    assert main(["router", "calibrate", "--verifier", str(verifier_file), "--input",
                 str(labels), "--quality-floor", "0.99", "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["escalation_share"] == pytest.approx(0.34, abs=0.02)
    assert result["config"]["cascade"]["verifier"] == "verifier-test"
    assert main(["router", "calibrate", "--verifier", str(verifier_file), "--input",
                 str(labels), "--target-large-share", "0.5", "--json"]) == 0  # fmt: skip
    assert 0.0 <= json.loads(capsys.readouterr().out)["threshold"] <= 1.0


def test_the_verifier_trains_on_your_labels_with_logprobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels only (no public set): the small answers that came with low log-probabilities
    were the wrong ones, so the trained verifier learns to read log-probabilities."""
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    lines = []
    for i in range(120):
        wrong = i % 4 == 0
        lp = [float(v) for v in rng.normal(-2.5 if wrong else -0.2, 0.3, size=6)]
        lines.append({"id": f"q{i}", "prompt": f"Tell me about topic {i}.",
                      "messages": [{"role": "user", "content": f"Tell me about topic {i}."}],
                      "answers": {"small": f"Topic {i} is interesting.", "large": "Indeed."},
                      "logprobs": lp,
                      "acceptable": {"small": not wrong, "large": True}})  # fmt: skip
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(json.dumps(x) for x in lines))
    assert main(["router", "verifier", "train", "--sets", "", "--labels", str(labels), "--name",
                 "verifier-mine", "--out", str(tmp_path), "--boot", "20"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "| logs (120) | cascade |" in printed
    from gateway.router.verifier import VerifierModel

    data = json.loads((tmp_path / "verifier-mine.json").read_text())
    model = VerifierModel.from_json(data)
    assert model.uses_logprobs  # the gateway will ask the small tier for them
    cascade_apgr = data["meta"]["evaluation"]["sets"]["logs"]["schemes"]["cascade"]["apgr"]
    # out-of-fold, every wrong answer first: the oracle's 1 - 0.25 / 2 (a quarter are wrong)
    assert cascade_apgr["value"] == pytest.approx(0.875)
    assert "slice" not in data["meta"]  # the public slice is recorded only with public sets


def test_calibrate_mix_gives_the_mixed_score_a_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.router.verifier import Mix, load_verifier
    from tests.cascade.conftest import write_verifier

    assert main(["router", "calibrate", "--verifier", "verifier-v1", "--mix",
                 "--quality-floor", "0.95", "--json"]) == 0  # fmt: skip
    shipped = json.loads(capsys.readouterr().out)
    mix = load_verifier("verifier-v1").mix
    assert mix is not None and mix.router == DEFAULT_NAME
    assert shipped["threshold"] == pytest.approx(mix.threshold)  # the recorded one
    assert shipped["config"]["cascade"] == {"verifier": "verifier-v1", "mix": "auto",
                                            "threshold": round(mix.threshold, 6)}  # fmt: skip
    # On a labels file: the prompts scored by the mix's router, mixed with the verifier's
    own = write_verifier(tmp_path, "verifier-mixcal",
                         mix=Mix(DEFAULT_NAME, 0.3, 0.0, 1.0, 0.0, 1.0, 0.5))  # fmt: skip
    labels = _labels(tmp_path / "labels.jsonl")
    assert main(["router", "calibrate", "--verifier", str(own), "--mix", "--input",
                 str(labels), "--target-large-share", "0.34", "--json"]) == 0  # fmt: skip
    mixed = json.loads(capsys.readouterr().out)
    assert mixed["config"]["cascade"]["mix"] == "auto" and 0.0 < mixed["threshold"] < 1.0
    assert main(["router", "calibrate", "--mix", "--target-large-share", "0.2"]) == 2
    assert "--mix calibrates a verifier's mixed score: give --verifier" in capsys.readouterr().err
