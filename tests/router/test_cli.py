import json
from pathlib import Path

import pytest

from gateway.router.cli import main
from gateway.router.examples import parse_log_record


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
