"""Adversarial client texts for the time-bounded input tests (issue 12): each is about 4 MB and
aims at a known way for a regex, a tokenizer or a Python loop to go superlinear."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIZE = 4 * 1024 * 1024
CPU_LIMIT_S = 1.0


def _fill(unit: str, size: int = SIZE) -> str:
    return unit * (size // len(unit.encode())) + "x"  # a run that does not end the text


TEXTS: dict[str, Callable[[], str]] = {
    "dots": lambda: _fill("."),
    "repeated_a": lambda: _fill("a"),
    "brackets": lambda: _fill("[{("),
    "unicode": lambda: _fill("é漢😀\u0301"),
    "newlines": lambda: _fill("\n"),
    "spaces": lambda: _fill(" "),
    "digits": lambda: _fill("7"),
    "answer_colons": lambda: _fill("A:"),
    "answer_blanks": lambda: _fill("Answer:" + " " * 200 + "x"),
    "choices": lambda: _fill("\n A) "),
    "code_ends": lambda: _fill("{ \n"),
    "letter_then_dots": lambda: _fill("a" + "." * 60_000),
}


def many_messages() -> list[dict[str, Any]]:
    """About 4 MB as 40,000 messages of ~100 characters (system, user and assistant turns)."""
    roles = ("system", "user", "assistant")
    return [{"role": roles[i % 3], "content": f"{i}. " + "why? " * 20} for i in range(40_000)]


def chat_bodies() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(name, messages) for every adversarial text as the last user turn, and many messages."""
    for name, make in TEXTS.items():
        system = {"role": "system", "content": "Be brief."}
        yield name, [system, {"role": "user", "content": make()}]
    yield "many_messages", many_messages()


@contextmanager
def cpu_seconds() -> Iterator[list[float]]:
    """Measures the process's CPU time (all threads) spent inside the block: `out[0]`."""
    out = [0.0]
    start = time.process_time()
    try:
        yield out
    finally:
        out[0] = time.process_time() - start
