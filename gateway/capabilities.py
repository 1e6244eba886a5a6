"""What a model can take, and what a request needs: a context window, images (vision), tool
calling, and the client APIs the upstream speaks natively.

A model's capabilities are worked out once at start-up: what its configuration declares
(`max_input_tokens`, `vision`, `tools`, `apis`), else its entry in litellm's bundled map
(`max_input_tokens`, `supports_vision`, `supports_function_calling`; read as a file by
gateway/price_map.py, litellm is not imported), else a local llama.cpp server's `ctx_size`
for the window. What is still unknown is assumed possible: a route skips a model only for
what it is known not to take (the upstream's own refusal of an over-long prompt still falls
back to a larger window, gateway/resilience.py)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import ModelConfig

# The error codes and types an upstream's 400 names an over-long prompt with (OpenAI's code,
# llama.cpp's type). vLLM and Anthropic say it only in the message, which is not matched.
CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
CONTEXT_EXCEEDED = "context_length_exceeded"  # the code a provider's error then carries

_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_input_tokens: int | None = None  # None: unknown
    vision: bool | None = None
    tools: bool | None = None
    apis: frozenset[str] = frozenset({"chat"})


@dataclass(frozen=True, slots=True)
class Needs:
    """What one request needs of the model that answers it."""

    prompt_tokens: int
    images: bool = False
    tools: bool = False
    api: str = "chat"  # the client's API: chat, responses or messages
    native: bool = False  # only a model speaking `api` natively can take it


def of(cfg: ModelConfig) -> Capabilities:
    entry = _map_entry(cfg)
    window = cfg.max_input_tokens
    if window is None:
        window = _int(entry.get("max_input_tokens"))
    if window is None and cfg.local is not None:
        window = cfg.local.ctx_size
    vision = cfg.vision if cfg.vision is not None else _bool(entry.get("supports_vision"))
    tools = cfg.tools
    if tools is None:
        tools = _bool(entry.get("supports_function_calling"))
    return Capabilities(window, vision, tools, frozenset(cfg.apis))


def needs(
    body: Mapping[str, Any], prompt_tokens: int, api: str = "chat", native: bool = False
) -> Needs:
    """A chat body's needs (the bridged APIs are translated to chat before routing); `native`:
    only a model speaking `api` natively can take it (the bridge cannot translate it)."""
    return Needs(
        prompt_tokens,
        images=has_images(body.get("messages") or ()),
        tools=bool(body.get("tools") or body.get("functions")),
        api=api,
        native=native,
    )


def has_images(messages: Sequence[Any]) -> bool:
    for m in messages:
        parts = m.get("content") if isinstance(m, dict) else None
        if isinstance(parts, list) and any(
            isinstance(p, dict) and isinstance(p.get("type"), str) and p["type"] in _IMAGE_PARTS
            for p in parts
        ):
            return True
    return False


def refusal(cap: Capabilities, need: Needs) -> str | None:
    """Why a model with `cap` cannot take a request needing `need`; None when it can."""
    if need.api not in cap.apis and need.native:
        return f"does not speak the {need.api} API natively (the bridge cannot translate it)"
    if need.api not in cap.apis and "chat" not in cap.apis:
        return f"does not speak the {need.api} API"
    if need.images and cap.vision is False:
        return "no vision (the request has images)"
    if need.tools and cap.tools is False:
        return "no tool calling (the request has tools)"
    if cap.max_input_tokens is not None and need.prompt_tokens > cap.max_input_tokens:
        return f"window of {cap.max_input_tokens} tokens < the prompt's ~{need.prompt_tokens}"
    return None


def exceeds_context(error: Any) -> bool:
    """Whether an upstream's error object (`{"error": {...}}`'s inner dict) names an
    over-long prompt by its code or type."""
    if not isinstance(error, dict):
        return False
    return error.get("code") in CONTEXT_CODES or error.get("type") in CONTEXT_CODES


def _map_entry(cfg: ModelConfig) -> Mapping[str, Any]:
    if cfg.max_input_tokens is not None and cfg.vision is not None and cfg.tools is not None:
        return {}  # everything declared: the map is not read
    from gateway import price_map

    table = price_map.entries()
    for key in (cfg.price_from, cfg.model):
        if not key:
            continue
        for k in (key, key.split("/", 1)[1] if "/" in key else None):
            entry = table.get(k) if k else None
            if isinstance(entry, dict):
                return entry
    return {}


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None
