"""Token counting is bounded in CPU for any input and never under-counts (issue 12, problem 12:
"token counting of a 4 MB body runs on the event loop"; 4 MB of dots took 3.4 s of CPU in one
tiktoken call, and 4 MB of spaces raised ValueError, a 500)."""

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import tokens
from gateway.router.lab.public_data import default_data_dir, load
from tests.hardening.bounded_support import CPU_LIMIT_S, TEXTS, chat_bodies, cpu_seconds


def _tiktoken(text: str) -> int:
    enc = tokens.encoding()
    assert enc is not None
    return len(enc.encode(text, disallowed_special=()))


@pytest.fixture(autouse=True)
def _bpe() -> None:
    assert tokens.encoding() is not None, "tests need the o200k BPE (TIKTOKEN_CACHE_DIR)"


@pytest.mark.parametrize(("name", "messages"), [pytest.param(*b, id=b[0]) for b in chat_bodies()])
def test_counting_4mb_of_chat_takes_under_a_second(
    name: str, messages: list[dict[str, Any]]
) -> None:
    with cpu_seconds() as cpu:
        n = tokens.count_messages(messages)
    assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
    assert n > 0


@pytest.mark.parametrize("name", list(TEXTS))
def test_counting_a_4mb_prompt_takes_under_a_second_and_bounds_from_above(name: str) -> None:
    text = TEXTS[name]()
    with cpu_seconds() as cpu:
        n = tokens.count_prompt([text])
    assert cpu[0] < CPU_LIMIT_S, f"{name}: {cpu[0]:.2f} s of CPU"
    assert n <= len(text.encode())  # never more than one token a byte
    head = text[:200_000]  # small enough to count in one call (and exactly) for comparison
    if name != "spaces":  # tiktoken itself fails on long runs of blanks
        assert tokens.count_text(head) >= _tiktoken(head)


def _prose() -> Iterator[str]:
    yield "The quick brown fox jumps over the lazy dog. " * 3000
    yield "東京は日本の首都です。人口は約千四百万人で、世界最大の都市圏の一つです。" * 2000
    yield "def f(x):\n    return x ** 2  # square it\n\nprint(f(3)) -> 9; don't panic\n" * 2000
    yield "Ça coûte 12,50 € — naïve café? Résumé: éléphant, ZOË's 1234567 items.\r\n" * 2000
    yield "e\u0301" * 10 + " ab" * 20_000  # a combining mark must not be cut from its letter


@pytest.mark.parametrize("text", list(_prose()), ids=["en", "ja", "code", "fr", "marks"])
def test_long_ordinary_texts_count_exactly(text: str) -> None:
    assert len(text) > tokens.CHUNK_CHARS * 3
    assert tokens.count_text(text) == _tiktoken(text)


@pytest.mark.skipif(not default_data_dir().is_dir(), reason="no routing data")
def test_training_prompts_joined_count_exactly() -> None:
    text = "\n\n".join(m["content"] or "" for e in load("mmlu")[:400] for m in e.messages)
    assert len(text) > 4 * tokens.CHUNK_CHARS
    assert tokens.count_text(text) == _tiktoken(text)


_FRAGMENTS = [
    " ", "  ", "\n", "\r\n", "\t", "a", "Bc", "de", "'s", "'", "\u2019", "1", "234", ".", "...",
    ",", "/", "_", "-", "\u0301", "é", "漢", "。", "😀", "(", "{", "x_y",
]  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map("".join))
def test_cut_pieces_sum_to_the_exact_count(text: str) -> None:
    """With pieces of ~8 characters: the exact count wherever every piece was counted by
    tiktoken (the cuts are where o200k cuts too), an upper bound in any case."""
    in_bytes: list[int] = []
    utf8_len = tokens._utf8_len
    mp = pytest.MonkeyPatch()
    mp.setattr(tokens, "CHUNK_CHARS", 8)
    mp.setattr(tokens, "_utf8_len", lambda *a: in_bytes.append(1) or utf8_len(*a))
    try:
        n = tokens.count_text(text)
    finally:
        mp.undo()
    exact = _tiktoken(text)
    assert n >= exact
    if not in_bytes:
        assert n == exact
