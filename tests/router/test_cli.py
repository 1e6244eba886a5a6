import json
from pathlib import Path

import pytest

from gateway.router.lab.cli import main
from gateway.router.lab.examples import parse_log_record


def test_score_roundtrip_preserves_order(tmp_path: Path) -> None:
    lines = [
        {"id": "b", "prompt": "Prove Fermat's little theorem."},
        {"id": 7, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        {"id": "a", "messages": [{"role": "system", "content": "x"},
                                 {"role": "user", "content": None}]},
    ]  # fmt: skip
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["router", "score", "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(x) for x in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == ["b", 7, "a"]
    assert all(0.0 <= o["score"] <= 1.0 for o in out)


def test_calibrate_prints_monotone_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    values = []
    for share in ("0.1", "0.3", "0.6"):
        assert main(["router", "calibrate", "--target-large-share", share]) == 0
        values.append(float(capsys.readouterr().out))
    assert values == sorted(values, reverse=True)
    assert main(["router", "calibrate", "--quality-floor", "0.95", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["large_share"] <= 1.0


def test_calibrate_on_labelled_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"prompt": f"question {i}?", "messages": [{"role": "user", "content": f"q{i} " * i}],
             "acceptable": {"small": i % 3 != 0, "large": True}} for i in range(1, 30)]  # fmt: skip
    src = tmp_path / "logs.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["router", "calibrate", "--quality-floor", "0.9", "--input", str(src)]) == 0
    assert 0.0 <= float(capsys.readouterr().out) <= 1.0


def test_log_record_validation() -> None:
    ex = parse_log_record({"messages": [{"role": "user", "content": "x"}],
                           "acceptable": {"small": False, "large": 1.0}}, "t")  # fmt: skip
    assert ex.gain == 1.0
    with pytest.raises(ValueError, match="acceptable"):
        parse_log_record({"messages": [{"role": "user", "content": "x"}]}, "t")


ROUTING_DATA = Path(__file__).resolve().parents[3] / "shared" / "routing-data"
README = Path(__file__).resolve().parents[2] / "docs" / "routing.md"  # the router's figures
README_ROWS = {"mmlu": "MMLU", "gsm8k": "GSM8K", "mt_bench": "MT-Bench",
               "rb_arc": "RouterBench ARC-C", "rb_mbpp": "RouterBench MBPP",
               "rb_winogrande": "RouterBench Winogrande"}  # fmt: skip


def test_readme_router_figures_are_the_artifacts() -> None:
    """The docs' APGR table is the shipped artifact's recorded (out-of-fold) evaluation."""
    import re

    from gateway.router import artifact

    sets = artifact.load(artifact.DEFAULT_NAME).meta["evaluation"]["sets"]
    text = README.read_text(encoding="utf-8")
    for name, label in README_ROWS.items():
        row = re.search(rf"^\| {re.escape(label)} \([\d,]+\) \| ([\d.]+) \[([\d.]+), ([\d.]+)\]",
                        text, re.MULTILINE)  # fmt: skip
        assert row, label
        apgr = sets[name]["router"]["apgr"]
        recorded = [round(apgr[k], 3) for k in ("value", "lo", "hi")]
        assert [float(g) for g in row.groups()] == recorded, label


@pytest.mark.skipif(not ROUTING_DATA.is_dir(), reason="needs ../shared/routing-data")
def test_train_then_eval_reproduce_the_same_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`router eval --json` recomputes exactly what `router train` recorded (two small sets)."""
    common = ["--data", str(ROUTING_DATA), "--sets", "rb_arc,rb_mbpp", "--boot", "50"]
    assert main(["router", "train", *common, "--name", "t", "--out", str(tmp_path)]) == 0
    recorded = json.loads((tmp_path / "t.json").read_text())["evaluation"]
    capsys.readouterr()
    assert main(["router", "eval", *common, "--name", str(tmp_path / "t.json"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["sets"] == recorded["sets"]
    assert again["folds"] == recorded["folds"]
    for name in ("rb_arc", "rb_mbpp"):
        router, rand = recorded["sets"][name]["router"], recorded["sets"][name]["random"]
        assert 0.0 < router["apgr"]["lo"] <= router["apgr"]["value"] <= router["apgr"]["hi"]
        assert rand["apgr"] == pytest.approx(0.5, abs=0.01)


def test_training_without_scikit_learn_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # what an install without [train] has
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    args = ["router", "train", "--data", str(ROUTING_DATA), "--sets", "rb_mbpp", "--boot", "5"]
    assert main([*args, "--out", "/nonexistent"]) == 2
    assert "pip install -e '.[train]'" in capsys.readouterr().err


def test_train_and_eval_default_to_the_named_artifacts_difficulty_weight(tmp_path: Path) -> None:
    """Without `--difficulty-weight`, train and eval use the weight the artifact of `--name`
    records, so `frugal router train` reproduces the shipped default (minilm-dq8-g: 1) and
    `--name minilm-dq8` the plain mixture; a new name starts from 0."""
    import argparse

    from gateway.router import artifact
    from gateway.router.lab.cli_actions import _difficulty_weight

    def weight(**kw: object) -> float:
        return _difficulty_weight(argparse.Namespace(**kw))

    recorded = artifact.load(artifact.DEFAULT_NAME).meta["model"]["difficulty_weight"]
    assert weight(name=None, difficulty_weight=None) == recorded == 1.0
    assert weight(name="minilm-dq8", difficulty_weight=None) == 0.0
    assert weight(name="new", out=tmp_path, difficulty_weight=None) == 0.0
    assert weight(name="minilm-dq8", difficulty_weight=0.5) == 0.5
