"""The pairwise judge: which of two answers to the same conversation is better, asked in both
orders (LLM judges favour a position), with a fixed rubric. The small answer is *acceptable*
unless the judge prefers the large one in both orders (or in one, with a tie in the other).

The rubric is fixed here and quoted in gateway/learning/README.md; change both together."""

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from gateway import tokens

RUBRIC = """\
You are an impartial judge. Compare two AI assistants' answers to the conversation below.
Judge only the final assistant answer to the last user turn. Prefer the answer that is
correct, answers what was asked completely, follows the user's instructions (format, length,
language) and is not harmful. Correctness outweighs style; length alone is not a merit. If a
reference answer is given, an answer that contradicts it is wrong. Do not let the order of the
answers or the assistants' names influence you. If both answers are equally good (or equally
bad), it is a tie.
Reply with a brief explanation, then on the last line exactly one verdict:
[[A]] if assistant A is better, [[B]] if assistant B is better, [[C]] for a tie."""

Winner = Literal["small", "large", "tie"]
Verdict = Literal["small_better", "tie", "large_better", "judge_failed"]
_VERDICT = re.compile(r"\[\[([ABC])\]\]")
MAX_CHARS = 12_000  # each of the question and the answers, as sent to the judge (head + tail)


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    small_score: float | None  # 0..1: 1 = small better in both orders, 0.5 = even, 0 = large
    orders: tuple[str, str]  # each order's winner ("small" | "large" | "tie" | "failed")
    cost_usd: str = "0"

    @property
    def small_acceptable(self) -> bool | None:
        return None if self.small_score is None else self.small_score >= 0.5


def _clip(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[: MAX_CHARS - 2000] + "\n[...]\n" + text[-2000:]


def transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation as plain text (roles and text parts)."""
    lines = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        lines.append(f"{m.get('role', 'user')}: {content or ''}")
    return _clip("\n".join(lines))


def prompt(
    messages: Sequence[Mapping[str, Any]], a: str, b: str, reference: str | None = None
) -> list[dict[str, str]]:
    """The judge's chat messages for answers `a` and `b` (in that order)."""
    parts = [f"[Conversation]\n{transcript(messages)}"]
    if reference:
        parts.append(f"[Reference answer]\n{_clip(reference)}")
    parts += [f"[Assistant A's answer]\n{_clip(a)}", f"[Assistant B's answer]\n{_clip(b)}"]
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": "\n\n".join(parts)}]


@cache
def fixed_tokens() -> int:
    """Tokens of the judge prompt without the conversation and the answers (the rubric, the
    headings, the chat format), counted once: a judge call's cost estimate adds the rest."""
    return tokens.count_messages(prompt([], "", "", None))


def parse(text: str) -> Literal["A", "B", "C"] | None:
    """The last `[[A]]`/`[[B]]`/`[[C]]` in the judge's reply, or None."""
    found = _VERDICT.findall(text or "")
    if not found:
        return None
    last: Literal["A", "B", "C"] = found[-1]
    return last


_SCORE: dict[str, float] = {"small": 1.0, "tie": 0.5, "large": 0.0}


def combine(first: str, second: str) -> tuple[Verdict, float | None]:
    """Both orders' winners -> the verdict and the small answer's score (mean of the two)."""
    if "failed" in (first, second):
        return "judge_failed", None
    score = (_SCORE[first] + _SCORE[second]) / 2
    verdict: Verdict = "small_better" if score > 0.5 else "large_better" if score < 0.5 else "tie"
    return verdict, score


# ask(messages) -> (reply text, cost in USD as a string); raises on failure
Ask = Callable[[list[dict[str, str]]], Awaitable[tuple[str, str]]]


async def judge(
    ask: Ask, messages: Sequence[Mapping[str, Any]], small: str, large: str,
    reference: str | None = None,
) -> Judgement:  # fmt: skip
    """Ask in both orders (small as A, then large as A); a failed call or an unreadable reply
    makes that order `failed` and the judgement `judge_failed`."""
    from decimal import Decimal

    winners: list[str] = []
    cost = Decimal(0)
    for small_first in (True, False):
        a, b = (small, large) if small_first else (large, small)
        try:
            text, spent = await ask(prompt(messages, a, b, reference))
            cost += Decimal(spent)
        except Exception:
            winners.append("failed")
            continue
        pick = parse(text)
        if pick is None:
            winners.append("failed")
        elif pick == "C":
            winners.append("tie")
        else:
            winners.append("small" if (pick == "A") == small_first else "large")
    verdict, score = combine(winners[0], winners[1])
    return Judgement(verdict, score, (winners[0], winners[1]), str(cost))
