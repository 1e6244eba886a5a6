"""The router reads client text in linear time and sees a bounded input (issue 12, problem 1),
and its features are the very ones the shipped artifact was trained with on ordinary prompts.

`_old_features` below is the feature function as it was before the fix (patterns and all), kept
here as the reference: on every prompt of the public training sets, and on generated texts made
of the characters the rewritten patterns care about, the new features must equal it."""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cache.partition import last_user_turn, partition
from gateway.router import features
from gateway.router.conversation import _EXAMPLE_END, parse, strip_few_shot
from gateway.router.featurize import embedding_text
from gateway.router.heuristic import HEAD_CHARS, TAIL_CHARS, HeuristicScorer, text_of
from gateway.router.lab.public_data import DATASETS, default_data_dir, load
from tests.hardening.bounded_support import CPU_LIMIT_S, chat_bodies, cpu_seconds

# The patterns as trained (before issue 12): quadratic on runs of dots, digits and newlines.
OLD_MATH_SYMBOLS = re.compile(r"[=+*/^<>]|\\frac|\\sum|\\int|∫|√|π|\d+\s*%")
OLD_CHOICES = re.compile(r"^\s*\(?[A-D][.)]\s", re.MULTILINE)
OLD_SENTENCE_END = re.compile(r"[.!?\u3002\uff1f\uff01]+(?:\s|$)")
REWRITTEN = {
    "math": (OLD_MATH_SYMBOLS, features._MATH_SYMBOLS),
    "choices": (OLD_CHOICES, features._CHOICES),
    "sentence_end": (OLD_SENTENCE_END, features._SENTENCE_END),
}


def _old_features(messages: Sequence[Mapping[str, Any]], tools: bool) -> npt.NDArray[np.float32]:
    """structural_features(parse(...)) before issue 12 (unbounded texts, the old patterns)."""
    system, turns, last_user, last_i, n_user = [], [], "", -1, 0
    for i, m in enumerate(messages):
        text = text_of(m.get("content"))
        if m.get("role") in ("system", "developer"):
            system.append(text)
        elif m.get("role") == "user":
            n_user, last_user, last_i = n_user + 1, text, i
        tools = tools or bool(m.get("tool_calls")) or m.get("role") == "tool"
    for m in messages[: max(last_i, 0)]:
        if m.get("role") not in ("system", "developer"):
            turns.append(text_of(m.get("content")))
    sys_text = "\n".join(s for s in system if s)
    core = strip_few_shot(last_user)
    f = features
    log = lambda x: math.log1p(max(x, 0.0))  # noqa: E731
    share = lambda c, t: c / max(len(t), 1)  # noqa: E731
    words = max(len(core.split()), 1)
    sentences = max(len(OLD_SENTENCE_END.findall(core)), 1)
    values = (
        log(len(core)), log(len(last_user)), log(len(sys_text)), log(sum(len(t) for t in turns)),
        log(n_user), log(len(messages)), 1.0 if tools else 0.0,
        log(len(_EXAMPLE_END.findall(last_user))),
        log(len(f._CODE.findall(core))), log(len(f._CODE_WORDS.findall(core))),
        100.0 * share(len(OLD_MATH_SYMBOLS.findall(core)), core),
        100.0 * share(len(f._NUMBER.findall(core)), core),
        log(len(f._STEP_CUES.findall(core))), log(len(f._CREATIVE.findall(core))),
        1.0 if len(OLD_CHOICES.findall(core)) >= 2 else 0.0, log(core.count("?")),
        share(sum(1 for ch in core if ord(ch) > 127), core),
        share(len(f._CJK.findall(core)), core), log(core.count("\n") + 1), log(words / sentences),
    )  # fmt: skip
    return np.asarray(values, dtype=np.float32)


def _new_features(messages: Sequence[Mapping[str, Any]], tools: bool) -> npt.NDArray[np.float32]:
    return features.structural_features(parse(messages, tools))


ORDINARY = [
    "Say hello",
    "What is 15% of 80? Show the steps.",
    "Solve: 3x + 7 = 22. Then check the answer!",
    "```python\ndef f(x):\n    return x * 2\n```\nWhy does this return 4 for 2?",
    "Which is largest?\nA) 3\nB) 5\nC) 4\nD) 1\nAnswer:",
    "  (A) first\n  (B) second\n\n\nC. third\n",
    "東京の人口は\uff1f 説明してください。 ありがとう\uff01",
    "Write a poem about the sea... in three stanzas?! Please.",
    "Compare 10 % and 0.1, then 2,5 and 2.5; finally 100%.",
]


def test_features_unchanged_on_ordinary_prompts() -> None:
    for text in ORDINARY:
        msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": text}]
        np.testing.assert_array_equal(_new_features(msgs, False), _old_features(msgs, False))


@pytest.mark.skipif(not default_data_dir().is_dir(), reason="no routing data")
def test_features_unchanged_on_every_training_prompt() -> None:
    """Every third prompt of the public sets the shipped artifact was trained on (~5,900)."""
    n = 0
    for name in DATASETS:
        for e in load(name)[::3]:
            np.testing.assert_array_equal(
                _new_features(e.messages, e.tools), _old_features(e.messages, e.tools), name
            )
            n += 1
    assert n > 5_000


# Texts made of what the rewritten patterns look at: terminators, digits, percent signs,
# blanks of every kind, newlines, choice letters and brackets (plus a little else).
_FRAGMENTS = [
    "\n", " ", "\t", "\r", "\x0b", "\x0c", "\x1c", "\u2028", "\u3000", "A", "B", "E", "(", ")",
    ".", "...", "!", "?", "\u3002", "\uff1f", "\uff01", "%", "1", "23", " %", "x", "a:", "=",
]  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join))
def test_rewritten_patterns_count_the_same(text: str) -> None:
    for name, (old, new) in REWRITTEN.items():
        assert len(new.findall(text)) == len(old.findall(text)), name


def test_long_texts_are_seen_as_head_and_tail_with_true_lengths() -> None:
    body = "x" * HEAD_CHARS + "MIDDLE" + "y" * TAIL_CHARS
    conv = parse([{"role": "system", "content": body}, {"role": "user", "content": body}])
    assert "MIDDLE" not in conv.last_user and "MIDDLE" not in conv.system
    assert conv.last_user.startswith("x" * HEAD_CHARS) and conv.last_user.endswith("y" * TAIL_CHARS)
    assert conv.last_user_chars == conv.system_chars == len(body)
    logs = features.structural_features(conv)
    i = features.FEATURE_NAMES.index("log_chars_last_user")
    assert logs[i] == np.float32(math.log1p(len(body)))


@pytest.mark.parametrize(("name", "messages"), [pytest.param(*b, id=b[0]) for b in chat_bodies()])
def test_router_features_of_4mb_take_under_a_second(
    name: str, messages: list[dict[str, Any]]
) -> None:
    with cpu_seconds() as cpu:
        conv = parse(messages, False)
        row = features.structural_features(conv)
        text = embedding_text(conv)
        score = HeuristicScorer().score(messages)
    assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
    assert np.isfinite(row).all() and 0.0 <= score <= 1.0
    assert len(text) <= HEAD_CHARS + TAIL_CHARS + 5


@pytest.fixture(scope="module")
def learned() -> Any:
    from gateway.router.loading import load_scorer

    scorer = load_scorer("default")
    scorer.score([{"role": "user", "content": "warm up"}])
    return scorer


@pytest.mark.parametrize(("name", "messages"), [pytest.param(*b, id=b[0]) for b in chat_bodies()])
def test_learned_scorer_of_4mb_takes_under_a_second(
    learned: Any, name: str, messages: list[dict[str, Any]]
) -> None:
    with cpu_seconds() as cpu:
        score = learned.score(messages)
    assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
    assert 0.0 <= score <= 1.0


@pytest.mark.parametrize(("name", "messages"), [pytest.param(*b, id=b[0]) for b in chat_bodies()])
def test_cache_partition_of_4mb_takes_under_a_second(
    name: str, messages: list[dict[str, Any]]
) -> None:
    body = {"model": "auto", "messages": messages, "temperature": 0}
    with cpu_seconds() as cpu:
        turn = last_user_turn(body)
        part = partition(body, ["small-a"], "team:research")
    assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
    assert turn is None or len(turn) <= 2000
    assert len(part) >= 16
