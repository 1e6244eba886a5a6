"""Worst-case cost of a request before it is sent: prompt tokens (tiktoken) plus the most the
model may write (the client's max_tokens, else the model's max_output_tokens, which the gateway
then sends upstream as the cap), times n choices, at each candidate's price: every input token
at the dearest input class (cache writes), every output token at the dearest output class, on
the requested service tier (gateway.pricing.worst_case). `affordable_output` answers the
inverse question: how many output tokens a remaining budget can still pay for."""

import re
from decimal import Decimal
from typing import Any

import orjson

from gateway import tokens
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


# OpenAI's reasoning families reject `max_tokens` and want `max_completion_tokens`.
_COMPLETION_CAP = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)


def cap_field(model_id: str, chat: bool = True) -> str:
    """The field that caps output for this upstream model id."""
    return "max_completion_tokens" if chat and _COMPLETION_CAP.match(model_id) else "max_tokens"


def with_output_cap(body: dict[str, Any], model: ModelConfig) -> dict[str, Any]:
    """The upstream body with the output cap the hold was worked out with: the client's (no
    more than the model's `max_output_tokens`), else `max_output_tokens`, in the field the
    model's family accepts. Without it a reasoning model may write, and bill, far past the
    hold."""
    if model.kind != "chat":
        return body
    asked = requested_output(body)
    cap = min(asked, model.max_output_tokens) if asked else model.max_output_tokens
    out = {k: v for k, v in body.items() if k not in ("max_tokens", "max_completion_tokens")}
    out[cap_field(model.model, chat="messages" in body)] = cap
    return out


# Worst-case tokens per image part when the upstream's own rule cannot be applied here (the
# image's size is unknown before fetching it): OpenAI high detail is at most 85 + 170 x 8 tiles
# = 1,445, Anthropic about 1,600 (a 1.15-megapixel image), Gemini 258 per 768-px tile.
IMAGE_TOKENS = 1_600
IMAGE_TOKENS_LOW = 85  # OpenAI `detail: low`


def prompt_extra(body: dict[str, Any]) -> int:
    """Input tokens the message text does not show: tool definitions, a `response_format`
    schema and images (chat), and token-id prompts (completions, embeddings)."""
    n = 0
    for key in ("tools", "functions", "response_format"):
        if body.get(key):
            n += tokens.count_text(orjson.dumps(body[key]).decode())
    for m in body.get("messages") or ():
        parts = m.get("content") if isinstance(m, dict) else None
        for p in parts if isinstance(parts, list) else ():
            if isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image"):
                img = p.get("image_url")
                low = isinstance(img, dict) and img.get("detail") == "low"
                n += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
    for key in ("prompt", "input"):  # completions' prompt, embeddings' input
        ids = body.get(key)
        for p in ids if isinstance(ids, list) else ():
            if isinstance(p, int) and not isinstance(p, bool):
                n += 1  # one token id
            elif isinstance(p, list):
                n += len(p)
    return n
