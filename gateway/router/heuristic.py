"""A simple, openly named heuristic scorer: longer, code- or math-heavy, multi-step prompts
score higher. It is the fallback when no learned router artifact is configured.

`router_view` bounds what any scorer reads of a text: the first `HEAD_CHARS` and the last
`TAIL_CHARS` characters (16 KiB in all; longer than nearly every prompt the shipped router was
trained on, so their features are unchanged). A 4 MB prompt costs the router as much as a
16 KiB one (issue 12, problem 1)."""

import re
from collections.abc import Mapping, Sequence
from typing import Any

_HARD_CUES = re.compile(
    r"\b(prove|derive|step[- ]by[- ]step|explain why|analy[sz]e|optimi[sz]e|algorithm|"
    r"complexity|refactor|debug|theorem|integral|equation|architecture|trade-?offs?)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"```|\bdef |\bclass |\bfunction\b|[{};]\s*$", re.MULTILINE)
_MATH = re.compile(r"[=+\-*/^]\s*\d|\d\s*[=+\-*/^]|\\frac|\\sum|∫")


HEAD_CHARS = 12 * 1024
TAIL_CHARS = 4 * 1024


def router_view(text: str) -> str:
    """`text` when it is at most HEAD_CHARS + TAIL_CHARS long, else its head and its tail."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " ... " + text[-TAIL_CHARS:]


def text_of(content: Any) -> str:
    """The text of an OpenAI message `content` (a string, a list of parts, or None)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("text")
        )
    return ""


class HeuristicScorer:
    name = "heuristic"
    blocking = False

    def score(self, messages: Sequence[Mapping[str, Any]], tools: bool = False) -> float:
        last_user = ""
        for m in reversed(messages):
            if m.get("role") == "user":
                last_user = text_of(m.get("content"))
                break
        length = len(last_user)
        last_user = router_view(last_user)
        s = 0.1
        s += min(length / 4000.0, 0.3)
        s += 0.15 * min(len(_HARD_CUES.findall(last_user)), 2)
        if _CODE.search(last_user):
            s += 0.15
        if _MATH.search(last_user):
            s += 0.1
        if tools:
            s += 0.1
        s += 0.02 * min(len(messages), 5)
        return max(0.0, min(1.0, s))
