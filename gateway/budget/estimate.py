"""Worst-case cost of a request before it is sent: prompt tokens (tiktoken) plus the most the
model may write (the client's max_tokens, else the model's max_output_tokens, which the gateway
then sends upstream as the cap), times n choices, at each candidate's price: every input token
at the dearest input class (cache writes), every output token at the dearest output class, on
the requested service tier (gateway.pricing.worst_case). `affordable_output` answers the
inverse question: how many output tokens a remaining budget can still pay for."""

from decimal import Decimal
from typing import Any

from gateway.config import ModelConfig
from gateway.pricing import ceiling, output_rate, served_tier
from gateway.usage import Usage


def requested_output(body: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        v = body.get(field)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def choices(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def worst_case(prompt_tokens: int, body: dict[str, Any], model: ModelConfig) -> Decimal:
    asked = requested_output(body)
    out = min(asked, model.max_output_tokens) if asked else model.max_output_tokens
    if model.kind == "embedding":
        out = 0
    tier = served_tier(Usage(), body)
    return ceiling(prompt_tokens, out * choices(body), model.price, tier)


def affordable_output(
    remaining: Decimal, prompt_tokens: int, body: dict[str, Any], model: ModelConfig
) -> int:
    """Output tokens per choice that `remaining` USD pays for after the prompt (0 if none)."""
    tier = served_tier(Usage(), body)
    per_token = output_rate(model.price, prompt_tokens, tier)
    left = remaining - ceiling(prompt_tokens, 0, model.price, tier)
    if per_token == 0:
        return model.max_output_tokens if left >= 0 else 0
    if left <= 0:
        return 0
    return int(left / per_token) // choices(body)
