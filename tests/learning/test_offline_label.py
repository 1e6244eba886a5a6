"""`frugal router label`: both tiers and the judge over past prompts, a cost estimate first,
confirmation, resumable output that `train --logs` reads."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main as frugal
from gateway.router.lab.examples import read_logs
from tests.learning import loop_support as s
from tests.support.fake_openai import FakeOpenAI, Script

KEY_ENV = "FRUGAL_TEST_LABEL_UPSTREAM_KEY"
PROMPTS = s.prompts(0, 4)  # 8 prompts


@pytest.fixture
def setup(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, fake_openai.api_key or "")
    judge = s.Judge(dict(PROMPTS), {PROMPTS[3][0]})
    fake_openai.reset()
    fake_openai.script = Script(reply=judge)
    cfg = s.config(fake_openai.url, "", tmp_path, KEY_ENV)
    del cfg["redis_url"]
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                               for i, (p, _) in enumerate(PROMPTS)))  # fmt: skip
    yield {"config": path, "input": prompts, "output": tmp_path / "labels.jsonl", "judge": judge}
    fake_openai.reset()
    mp.undo()


def label(setup: dict[str, Any], *extra: str) -> int:
    return frugal(["router", "label", "--config", str(setup["config"]), "--route", "auto",
                   "--input", str(setup["input"]), "--output", str(setup["output"]),
                   "--concurrency", "3", *extra])  # fmt: skip


def test_estimate_first_and_nothing_sent_without_yes(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI
) -> None:
    assert label(setup) == 1  # stdin is not a terminal: needs --yes
    err = capsys.readouterr().err
    assert "8 prompts to label" in err and "estimated cost: $" in err and "--yes" in err
    assert fake_openai.requests == [] and not setup["output"].exists()


def test_labels_are_written_resumably_and_train_reads_them(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert label(setup, "--yes", "--sample", "5", "--seed", "1") == 0
    first = [json.loads(x) for x in setup["output"].read_text().splitlines()]
    assert len(first) == 5
    assert label(setup, "--yes") == 0  # the other 3 only
    err = capsys.readouterr().err
    assert "3 prompts to label (5 already in" in err and "8/8" not in err
    lines = [json.loads(x) for x in setup["output"].read_text().splitlines()]
    failed = setup["output"].with_name("labels.jsonl.failed")
    (gone,) = [json.loads(x) for x in failed.read_text().splitlines()]
    assert gone["verdict"] == "judge_failed" and gone["messages"][0]["content"] == PROMPTS[3][0]
    assert sorted(x["id"] for x in [*lines, gone]) == [f"p{i}" for i in range(8)]
    truth = dict(PROMPTS)
    for line in lines:
        prompt = line["messages"][0]["content"]
        assert line["answers"] == {"small": s.SMALL_SAYS, "large": s.LARGE_SAYS}
        want = {"large": "large_better", "tie": "tie"}[truth[prompt]]
        assert line["verdict"] == want and line["cost"]["judge"] > 0
        small_ok = {"large": 0.0, "tie": 1.0}[truth[prompt]]
        assert line["acceptable"] == {"small": small_ok, "large": 1.0}
    assert setup["judge"].calls == 16  # two orders per prompt
    assert len(list(read_logs(setup["output"]))) == 7  # what `train --logs` reads
    assert label(setup, "--yes") == 0  # only the judge failure is tried again
    assert "1 prompts to label (7 already in" in capsys.readouterr().err
    assert setup["judge"].calls == 18
