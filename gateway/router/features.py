"""Structural features of a conversation: cheap, regex-level signals of difficulty.

Every feature is a float with a name (`FEATURE_NAMES`); the learned model standardises them,
so raw scales only need to be sane (counts go through log1p).

Every pattern runs in time linear in its input (issue 12, problem 1): no pattern can start a
match at every position of a long run and scan to the run's end. Three were rewritten for that,
with the same counts as the patterns the shipped artifact was trained with (the old patterns are
kept in tests/hardening/test_bounded_router.py, which compares the two): `_SENTENCE_END` and
the `\\d+\\s*%` branch of `_MATH_SYMBOLS` start only at the first character of a run (a
lookbehind), and `_CHOICES` skips leading blanks within its own line only (`[^\\S\\n]`, not
`\\s`, which crossed lines and rescanned a run of newlines from every line start). The texts
are also bounded before they get here (`conversation.parse` keeps a head and a tail).
"""

import math
import re

import numpy as np
import numpy.typing as npt

from gateway.router.conversation import Conversation

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bfunction\b|\breturn\b|#include|\bimport \w+|=>|[{};]\s*$",
    re.MULTILINE,
)
_CODE_WORDS = re.compile(
    r"\b(python|javascript|java|c\+\+|sql|function|code|program|script|regex|api|bug)\b",
    re.IGNORECASE,
)
_MATH_SYMBOLS = re.compile(r"[=+*/^<>]|\\frac|\\sum|\\int|∫|√|π|(?<!\d)\d++\s*+%")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_STEP_CUES = re.compile(
    r"\b(prove|derive|step[- ]by[- ]step|explain why|why|how many|how much|calculate|compute|"
    r"solve|analy[sz]e|optimi[sz]e|algorithm|complexity|refactor|debug|theorem|integral|"
    r"equation|trade-?offs?|compare|evaluate|justify|reason|first|then|finally|total|each)\b",
    re.IGNORECASE,
)
_CREATIVE = re.compile(
    r"\b(write|compose|draft|story|poem|essay|email|blog|rewrite|imagine|pretend)\b",
    re.IGNORECASE,
)
_CHOICES = re.compile(r"^[^\S\n]*+\(?[A-D][.)]\s", re.MULTILINE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"(?<![.!?\u3002\uff1f\uff01])[.!?\u3002\uff1f\uff01]++(?:\s|$)")

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars_core", "log_chars_last_user", "log_chars_system", "log_chars_earlier",
    "log_user_turns", "log_messages", "tools", "log_few_shot",
    "code_markers", "code_words", "math_symbol_density", "number_density", "step_cues",
    "creative_cues", "multiple_choice", "question_marks", "non_ascii_share", "cjk_share",
    "log_lines", "log_words_per_sentence",
)  # fmt: skip


def _log(x: float) -> float:
    return math.log1p(max(x, 0.0))


def _share(count: int, text: str) -> float:
    return count / max(len(text), 1)


def structural_features(conv: Conversation) -> npt.NDArray[np.float32]:
    """The `FEATURE_NAMES` vector of one conversation."""
    core = conv.core
    words = max(len(core.split()), 1)
    sentences = max(len(_SENTENCE_END.findall(core)), 1)
    non_ascii = sum(1 for ch in core if ord(ch) > 127)
    values = (
        _log(len(core)),
        _log(conv.last_user_chars),
        _log(conv.system_chars),
        _log(conv.earlier_chars),
        _log(conv.n_user_turns),
        _log(conv.n_messages),
        1.0 if conv.tools else 0.0,
        _log(conv.few_shot_examples),
        _log(len(_CODE.findall(core))),
        _log(len(_CODE_WORDS.findall(core))),
        100.0 * _share(len(_MATH_SYMBOLS.findall(core)), core),
        100.0 * _share(len(_NUMBER.findall(core)), core),
        _log(len(_STEP_CUES.findall(core))),
        _log(len(_CREATIVE.findall(core))),
        1.0 if len(_CHOICES.findall(core)) >= 2 else 0.0,
        _log(core.count("?")),
        _share(non_ascii, core),
        _share(len(_CJK.findall(core)), core),
        _log(core.count("\n") + 1),
        _log(words / sentences),
    )
    return np.asarray(values, dtype=np.float32)
