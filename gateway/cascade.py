"""Cascade: answer with the small tier first and escalate to the large one when a cheap check
on the small answer fails: an empty answer, one cut off by max_tokens, a refusal, or (where the
upstream returned log-probabilities) a low mean token log-probability."""

import re
from typing import Any

from gateway.config import CascadeConfig

_REFUSAL = re.compile(
    r"^\s*(?:I'm sorry|I am sorry|Sorry|I apologi[sz]e|As an AI|I can(?:no|')t (?:help|assist|"
    r"answer|provide|do)|I(?: am|'m) (?:not able|unable) to)",
    re.IGNORECASE,
)


def _texts(choice: dict[str, Any]) -> str:
    msg = choice.get("message")
    if isinstance(msg, dict):
        if msg.get("tool_calls"):
            return "<tool call>"  # a tool call is an answer, not an empty one
        content = msg.get("content")
        return content if isinstance(content, str) else ""
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _mean_logprob(choice: dict[str, Any]) -> float | None:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    values: list[float] = []
    if isinstance(lp.get("content"), list):  # chat
        values = [t["logprob"] for t in lp["content"]
                  if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]  # fmt: skip
    elif isinstance(lp.get("token_logprobs"), list):  # completions
        values = [v for v in lp["token_logprobs"] if isinstance(v, int | float)]
    return sum(values) / len(values) if values else None


def escalation_reason(body: dict[str, Any], cfg: CascadeConfig) -> str | None:
    """Why the small answer is not good enough, or None when it passes every check."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "empty"
    for choice in choices:
        if not isinstance(choice, dict):
            return "empty"
        text = _texts(choice)
        if "empty" in cfg.escalate_on and not text.strip():
            return "empty"
        if "truncated" in cfg.escalate_on and choice.get("finish_reason") == "length":
            return "truncated"
        if "refusal" in cfg.escalate_on and _REFUSAL.match(text):
            return "refusal"
        mean = _mean_logprob(choice)
        if cfg.min_mean_logprob is not None and mean is not None and mean < cfg.min_mean_logprob:
            return f"low_logprob({mean:.2f}<{cfg.min_mean_logprob:g})"
    return None
