"""A chat answer's usage dict in each API's shape. OpenAI-compatible upstreams report cached
input as a subset of `prompt_tokens` (`prompt_tokens_details.cached_tokens`) and reasoning as a
subset of `completion_tokens` (`completion_tokens_details.reasoning_tokens`)."""

from typing import Any


def _int(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _parts(usage: Any) -> tuple[int, int, int, int, int]:
    """(prompt, cached read, cache write, completion, reasoning) tokens."""
    u = usage if isinstance(usage, dict) else {}
    prompt_details = u.get("prompt_tokens_details")
    written = _int(prompt_details, "cache_creation_tokens") or _int(
        prompt_details, "cache_write_tokens"
    )
    return (
        _int(u, "prompt_tokens"), _int(prompt_details, "cached_tokens"), written,
        _int(u, "completion_tokens"), _int(u.get("completion_tokens_details"), "reasoning_tokens"),
    )  # fmt: skip


def reasoning_of(message: Any) -> str:
    """The reasoning text a chat message or delta carries, where the upstream sends it
    (`reasoning_content`: vLLM, llama.cpp, DeepSeek; `reasoning`: OpenRouter and others)."""
    if not isinstance(message, dict):
        return ""
    for key in ("reasoning_content", "reasoning"):
        if isinstance(message.get(key), str) and message[key]:
            return str(message[key])
    return ""


def anthropic(usage: Any) -> dict[str, int]:
    """Anthropic counts cache reads and writes *besides* `input_tokens`."""
    prompt, cached, written, completion, _ = _parts(usage)
    return {
        "input_tokens": max(prompt - cached - written, 0),
        "output_tokens": completion,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def responses(usage: Any) -> dict[str, Any]:
    """The Responses API counts cached input and reasoning as subsets, as chat does."""
    prompt, cached, written, completion, reasoning = _parts(usage)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }
