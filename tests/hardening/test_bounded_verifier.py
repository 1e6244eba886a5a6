"""The cascade's answer verifier reads client text (the prompt) and upstream text (the small
answer) in linear time, and its rewritten patterns give the signals the shipped verifier was
trained with: the old patterns are kept here as the reference."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.router import verifier
from tests.hardening.bounded_support import CPU_LIMIT_S, TEXTS, cpu_seconds

# The patterns as trained: quadratic on runs of newlines, digits and "1+1+1...".
_NUM = r"\(?\$?-?\d[\d,]*(?:\.\d+)?\)?"
_OP = "[-+*/x\u00d7\u00f7]"
OLD_ARITH = re.compile(
    rf"((?:{_NUM}\s*{_OP}\s*)+{_NUM})\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\s*{_OP}\s*\d)"
)
OLD_OPTIONS = re.compile(r"(?:^|\n)\s*\(?([A-E])[).:]\s", re.MULTILINE)
OLD_LETTER = re.compile(r"^\W*\(?([A-E])\b[).:]?|\b(?:answer|option)\s*(?:is)?\s*:?\s*\(?([A-E])\b")
OLD_MATH_PROMPT = re.compile(
    r"\b(?:how (?:many|much)|calculate|compute|what is the (?:total|sum|difference|product)|"
    r"solve|percent|\d+\s*[-+*/]\s*\d+)",
    re.IGNORECASE,
)

ARITH_TEXTS = {
    "plus_then_equals": lambda: "1+" * 2_000_000 + "=2",
    "ones_equals": lambda: "1=" * 2_000_000,
    "equation_lines": lambda: "1 + 1 = 2\n" * 400_000,
    "digits_equals": lambda: "7" * 4_000_000 + "=1",
    "huge_number": lambda: "the answer is " + "9" * 4_000,
}


@pytest.mark.parametrize("name", [*TEXTS, *ARITH_TEXTS])
@pytest.mark.parametrize("where", ["prompt", "answer"])
def test_signals_of_a_4mb_text_cost_under_a_second(name: str, where: str) -> None:
    text = (TEXTS.get(name) or ARITH_TEXTS[name])()
    question = "How many apples are left? A) 1 B) 2"
    messages = [{"role": "user", "content": text if where == "prompt" else question}]
    with cpu_seconds() as spent:
        out = verifier.signals(messages, text if where == "answer" else "B) 2")
    assert spent[0] < CPU_LIMIT_S, f"{name} as the {where}: {spent[0]:.2f} s of CPU"
    assert all(isinstance(v, float) for v in out.values())


def test_a_number_too_large_for_a_float_is_no_final_number() -> None:
    assert verifier.final_number("so the total is " + "9" * 400) is None  # was OverflowError
    assert verifier.final_number("#### 1,234") == 1234.0


_ARITH_ALPHABET = st.sampled_from([*list("0123 45+-*/x=.,$()\n"), "\u00d7", "ab", " = ", "1"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(_ARITH_ALPHABET, max_size=80).map("".join))
def test_arithmetic_steps_are_the_old_patterns(text: str) -> None:
    assert verifier._arith_steps(text) == OLD_ARITH.findall(text)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([*list("ABCEF().: \n\t"), "\r\n", "x"]), max_size=60).map("".join))
def test_option_letters_are_the_old_patterns(text: str) -> None:
    assert set(verifier._OPTIONS.findall(text)) == set(OLD_OPTIONS.findall(text))


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([*list("12 +-*/a\n"), "solve", "7%"]), max_size=40).map("".join))
def test_math_prompt_cue_is_the_old_pattern(text: str) -> None:
    assert bool(verifier._MATH_PROMPT.search(text)) == bool(OLD_MATH_PROMPT.search(text))


_LETTER_ALPHABET = st.sampled_from(["answer", "option", "is", ":", " ", "\n", "\t", "(", ")", "A",
                                    "B", "E", "F", "x", ".", "The "])  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_LETTER_ALPHABET, max_size=40).map("".join))
def test_the_option_letter_pattern_is_the_old_one(text: str) -> None:
    old, new = OLD_LETTER.search(text), verifier._LETTER.search(text)
    assert (old and (old.span(), old.groups())) == (new and (new.span(), new.groups()))


def test_the_option_letter_pattern_is_linear_in_a_run_of_spaces() -> None:
    with cpu_seconds() as spent:
        for word in ("answer", "option"):
            assert verifier._LETTER.search(word + " " * 1_000_000 + "z") is None
    assert spent[0] < CPU_LIMIT_S, f"{spent[0]:.2f} s of CPU"
