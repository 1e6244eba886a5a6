"""The verifier's signals, the shipped artifact (its speed, and its training reproducing the
figure recorded on a small slice of the public data)."""

import statistics
import time

import pytest

from gateway.router.verifier import (
    DEFAULT_VERIFIER,
    choice_letter,
    final_number,
    load_verifier,
    signals,
)

MATH = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples?"}]
CHOICE = [{"role": "user", "content": "Which is a mammal?\nA) shark\nB) whale\nC) trout\nAnswer:"}]
CODE = [{"role": "user", "content": "Write a function to reverse a list."}]


def test_math_signals_check_the_arithmetic_and_the_final_number() -> None:
    good = signals(MATH, "3 + 4 = 7, and 7 * 2 = 14 halves.\n#### 7")
    assert good["kind_math"] == 1.0 and good["final_number"] == 1.0
    assert good["arith_wrong"] == 0.0 and good["arith_steps"] > 0
    bad = signals(MATH, "He has 3 + 4 * 2 = 14 apples.")  # a chain is evaluated whole: 11
    assert bad["arith_wrong"] == 1.0
    assert signals(MATH, "Lots of apples.")["math_without_number"] == 1.0
    assert final_number("so $1,250.50 in total\n#### 1,250.5") == 1250.5
    half = signals(MATH, "Each gets 7 / 2 = 3.5 apples.")  # counts of things are whole
    assert half["final_not_integer"] == 1.0 and half["final_marked"] == 0.0
    marked = signals(MATH, "3 + 4 = 7.\nThe answer is 7.")
    assert marked["final_marked"] == 1.0 and marked["final_not_integer"] == 0.0
    assert signals(MATH, "3 - 4 = -1")["final_negative"] == 1.0


def test_choice_and_code_format_checks() -> None:
    assert signals(CHOICE, "B")["choice_letter"] == 1.0
    assert signals(CHOICE, "I would say the whale.")["choice_without_letter"] == 1.0
    assert choice_letter("The answer is (C).") == "C"
    ok = signals(CODE, "```python\ndef rev(xs):\n    return xs[::-1]\n```")
    assert ok["kind_code"] == 1.0 and ok["python_parses"] == 1.0 and ok["code_not_python"] == 0
    js = signals(CODE, "```javascript\nconst rev = xs => xs.reverse();\n```")
    assert js["code_not_python"] == 1.0
    broken = signals(CODE, "```python\ndef rev(xs) return xs[::-1]\n```")
    assert broken["python_parses"] == 0.0 and broken["code_not_python"] == 1.0


def test_math_check_reads_the_answer_against_its_question() -> None:
    q = [{"role": "user", "content": "Ann has 12 pens and gives away a third of them. "
          "How many pens does she have left?"}]  # fmt: skip
    fits = signals(q, "A third of 12 is 12 / 3 = 4.\nShe has 12 - 4 = 8 pens left.\n#### 8")
    assert fits["q_numbers_used"] == 1.0 and fits["foreign_any"] == 0.0
    assert fits["final_is_last_result"] == 1.0 and fits["final_in_question"] == 0.0
    assert fits["asked_unit_restated"] == 1.0
    off = signals(q, "She gives 5 away, so 17 - 5 = 12 pens.\n#### 12")
    assert off["foreign_any"] == 1.0 and off["final_in_question"] == 1.0  # 17 from nowhere
    assert off["final_is_last_result"] == 1.0
    jump = signals(q, "12 - 4 = 8, then she has 3 left.\n#### 3")
    assert jump["final_is_last_result"] == 0.0
    assert signals(CHOICE, "B")["q_numbers_used"] == 0.0  # only for math prompts


def test_choice_and_code_checks_read_the_pick_and_the_code() -> None:
    animals = [{"role": "user", "content": "Which animal lives in the sea?\nA) cat\n"
                "B) blue whale\nC) ant\nAnswer:"}]  # fmt: skip
    picked = signals(animals, "B")
    assert picked["mc_first"] == 0.0 and picked["mc_last"] == 0.0
    assert picked["mc_longest"] == 1.0 and picked["mc_len_rank"] == 1.0
    last = signals(animals, "C")
    assert last["mc_last"] == 1.0 and last["mc_longest"] == 0.0 and last["mc_len_rank"] == 0.0
    code = signals(CODE, "```python\ndef reverse_list(xs):\n    return xs[::-1]\n```")
    assert code["code_return"] == 1.0 and code["code_name_match"] == 1.0
    assert code["code_print"] == 0.0 and code["code_loops"] == 0.0
    prints = signals(CODE, "```python\ndef f(xs):\n    for x in xs:\n        print(x)\n```")
    assert prints["code_print"] == 1.0 and prints["code_loops"] > 0
    assert signals(MATH, "```python\nreturn 1\n```")["code_return"] == 0.0  # code prompts only


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("Write a python function.", "```python\n" + "def f(x):\n    return f(x)\n" * 150_000),
        ("Write a python function.", "```python\n" + "(" * 100_000 + "```"),
        ("Pick one:\n" + "A) x\nB) y\n" * 200_000, "B"),
        ("How many? " + "12 + 7.5% of $3,400, " * 100_000, "1 + 2 = 3, 4 = 5 " * 200_000),
    ],
    ids=["defs", "nesting", "options", "numbers"],
)
def test_the_fit_checks_of_4mb_texts_stay_bounded(prompt: str, answer: str) -> None:
    start = time.process_time()
    out = signals([{"role": "user", "content": prompt}], answer)
    assert time.process_time() - start < 2.0  # generous: ~0.1 s measured (32 KiB views)
    assert all(isinstance(v, float) and v == v for v in out.values())


def test_logprob_agreement_and_hedging_signals() -> None:
    lp = {"content": [{"token": "7", "logprob": -0.1, "top_logprobs": [
        {"token": "7", "logprob": -0.1}, {"token": "8", "logprob": -2.5}]},
        {"token": ".", "logprob": -3.0, "top_logprobs": []}]}  # fmt: skip
    s = signals(MATH, "7.", lp)
    assert s["lp_present"] == 1.0 and s["lp_mean"] == pytest.approx(-1.55)
    assert s["lp_min"] == -3.0 and s["lp_low_share"] == 0.5 and s["lp_entropy"] > 0
    assert signals(MATH, "7.", [-0.5, -1.5])["lp_mean"] == -1.0  # a plain list (score input)
    assert signals(MATH, "The total is 7.", second="I get 7 apples.")["agree"] == 1.0
    assert signals(MATH, "The total is 7.", second="I get 8 apples.")["agree"] == 0.0
    assert signals(MATH, "It is probably 7, I think.")["hedges"] > 0
    assert signals(MATH, "I'm sorry, I can't help with that.")["refusal"] == 1.0


def test_the_shipped_verifier_scores_in_under_5_ms_at_the_median() -> None:
    verifier = load_verifier(DEFAULT_VERIFIER)
    assert not verifier.blocking  # numpy only: no embedding model at serve time
    answer = "Tom starts with 3 apples.\nHe buys 4 more: 3 + 4 = 7.\n#### 7"
    assert 0.0 <= verifier.score(MATH, answer) <= 1.0
    times = []
    for _ in range(200):
        start = time.perf_counter()
        verifier.score(MATH, answer)
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.005  # the bound (measured ~0.1 ms)
    wrong = verifier.score(MATH, "Tom starts with 3 apples.\nHe buys 4 more: 3 + 4 = 8.\n#### 8")
    assert wrong > verifier.score(MATH, answer)  # a wrong step raises P(large better)


def test_training_reproduces_the_recorded_slice_figure() -> None:
    pytest.importorskip("sklearn")
    from gateway.router.lab import public_data
    from gateway.router.lab.verifier_train import slice_figure

    if not public_data.default_data_dir().is_dir():
        pytest.skip("no routing data")
    recorded = load_verifier(DEFAULT_VERIFIER).model.meta["slice"]
    again = slice_figure(None, recorded["c"])
    assert again["rows"] == recorded["rows"]
    for name, value in recorded["apgr"].items():
        assert again["apgr"][name] == pytest.approx(value, abs=1e-9)


def test_the_recorded_figures_hold_what_the_readme_claims() -> None:
    """gateway/router/README.md, "Against the targets": the cascade beats the prompt-only view
    by >= 0.05 APGR on GSM8K (CI above 0), and the mix is never below it on any set."""
    sets = load_verifier(DEFAULT_VERIFIER).model.meta["evaluation"]["sets"]
    gsm8k = sets["gsm8k"]["schemes"]["cascade"]["apgr_minus_prompt"]
    assert gsm8k["value"] >= 0.05 and gsm8k["lo"] > 0
    for name, entry in sets.items():
        assert entry["schemes"]["mix"]["apgr_minus_prompt"]["value"] >= 0, name
    cost = {s: sets["gsm8k"]["schemes"][s]["cost_fraction_at_95"]["value"]
            for s in ("prompt", "cascade")}  # fmt: skip
    assert cost["cascade"] < cost["prompt"]  # cheaper, but not the half the issue asks


def test_the_served_mix_is_recorded_for_the_shipped_router() -> None:
    """README, "The mix, served": fitted on the shipped router's out-of-fold scores (its
    per-set APGR is the router artifact's own), never below that router on any set, above it
    on GSM8K (CI above 0), and its threshold is the one its calibration gives."""
    from gateway.router import artifact
    from gateway.router.calibration import Calibration

    verifier = load_verifier(DEFAULT_VERIFIER)
    mix = verifier.mix
    assert mix is not None and mix.router == artifact.DEFAULT_NAME and 0 < mix.weight < 1
    sets = verifier.model.meta["mix"]["evaluation"]["sets"]
    recorded = artifact.load(artifact.DEFAULT_NAME).meta["evaluation"]["sets"]
    for name, entry in sets.items():
        served = entry["schemes"]["prompt"]["apgr"]["value"]
        assert served == pytest.approx(recorded[name]["router"]["apgr"]["value"], abs=1e-3)
        assert entry["schemes"]["mix"]["apgr_minus_prompt"]["value"] >= 0, name
    assert sets["gsm8k"]["schemes"]["mix"]["apgr_minus_prompt"]["lo"] > 0
    cal = Calibration.from_json(dict(mix.calibration or {}))
    assert cal.threshold_for_quality(0.95) == pytest.approx(mix.threshold)
    assert mix.threshold_for(mix.weight) == mix.threshold


def test_an_unknown_verifier_fails_at_start_up() -> None:
    from pydantic import ValidationError

    from gateway.config import CascadeConfig

    with pytest.raises(ValidationError, match="unknown verifier 'nope'; known: verifier-v1"):
        CascadeConfig(verifier="nope")
    assert CascadeConfig(verifier="verifier-v1").verifier == "verifier-v1"
