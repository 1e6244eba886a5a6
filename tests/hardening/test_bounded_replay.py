"""Replaying a cached answer as a stream splits it with a linear pattern (issue 12: every regex
over client or model text is linear): an all-blank answer was split in quadratic time."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cache import replay
from tests.hardening.bounded_support import CPU_LIMIT_S, TEXTS, cpu_seconds

OLD_PIECE = re.compile(r"\s*\S+\s*")  # before issue 12


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([" ", "\n", "\t", "\u3000", "a", "bc", ".", "é"]), max_size=40))
def test_pieces_are_the_same_as_before(parts: list[str]) -> None:
    text = "".join(parts)
    assert replay._PIECE.findall(text) == OLD_PIECE.findall(text)
    assert "".join(replay.pieces(text)) == text


def test_pieces_of_4mb_take_under_a_second() -> None:
    for name in ("spaces", "newlines", "dots", "unicode"):
        text = TEXTS[name]()
        with cpu_seconds() as cpu:
            out = replay.pieces(text)
        assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
        assert "".join(out) == text
