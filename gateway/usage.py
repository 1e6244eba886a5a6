"""Token usage as a record of the token classes a provider bills, normalised from every shape
an upstream reports it in (or estimated when an upstream sends none).

`prompt_tokens` is every input token, whatever its class, and `completion_tokens` every output
token, reasoning included (OpenAI's meaning). The classes are parts of them:

    input  = uncached + cached (read from the provider's cache) + cache writes (5 min, 1 h)
    output = visible output + reasoning
    audio and image tokens are parts of input (or output) too, where the upstream says so.

Shapes read by `usage_from` (a response body, a stream chunk or event, or a bare usage dict):

- OpenAI chat and completions, vLLM, llama.cpp: `prompt_tokens`, `completion_tokens`,
  `prompt_tokens_details.cached_tokens` (a subset of the prompt),
  `completion_tokens_details.reasoning_tokens` (a subset of the completion); llama.cpp's
  `timings` (`cache_n`, `prompt_n`, `predicted_n`) when it sends no usage.
- LiteLLM's adapters (Anthropic, Gemini, ...): the same OpenAI shape, with cache writes in
  `prompt_tokens_details.cache_creation_tokens` (+ `cache_creation_token_details` by TTL) or
  at the top level (`cache_creation_input_tokens`); its prompt total includes reads and writes.
- OpenAI Responses: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`,
  `output_tokens_details.reasoning_tokens`; also inside `response.completed` events.
- Anthropic Messages: `input_tokens` is the *uncached* input only; `cache_read_input_tokens`
  and `cache_creation_input_tokens` (split by `cache_creation.ephemeral_{5m,1h}_input_tokens`)
  come in addition; also inside `message_start` events.
- Gemini: `usageMetadata` (`promptTokenCount`, `cachedContentTokenCount`,
  `candidatesTokenCount`, `thoughtsTokenCount`, `toolUsePromptTokenCount`, per-modality
  details); its OpenAI-compatible endpoint may leave thinking tokens out of
  `completion_tokens` (they show in `total_tokens`): they are added back.
- DeepSeek: `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0  # every input token
    completion_tokens: int = 0  # every output token, reasoning included
    estimated: bool = False  # counted by the gateway (tiktoken), not reported by the upstream
    cached_tokens: int = 0  # input read from the provider's prompt cache
    cache_write_tokens: int = 0  # input written to the cache (Anthropic: 5-minute TTL)
    cache_write_1h_tokens: int = 0  # input written to the cache with a 1-hour TTL
    reasoning_tokens: int = 0  # output spent on reasoning (billed as output unless priced apart)
    audio_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_input_tokens: int = 0
    service_tier: str | None = None  # the tier the upstream says it served (flex, priority, ...)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input billed at the plain input rate."""
        return max(0, self.prompt_tokens - self.cached_tokens - self.cache_writes)

    @property
    def cache_writes(self) -> int:
        return self.cache_write_tokens + self.cache_write_1h_tokens

    def classes(self) -> dict[str, int]:
        """Every token class, by name (log lines, spans, metrics, the spend ledger)."""
        return {
            "input_uncached": self.uncached_input_tokens,
            "input_cached": self.cached_tokens,
            "input_cache_write": self.cache_write_tokens,
            "input_cache_write_1h": self.cache_write_1h_tokens,
            "output": self.completion_tokens - self.reasoning_tokens,
            "output_reasoning": self.reasoning_tokens,
        }

    def as_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens or self.audio_input_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens,
                                            "audio_tokens": self.audio_input_tokens}  # fmt: skip
        if self.reasoning_tokens or self.audio_output_tokens:
            details = {"reasoning_tokens": self.reasoning_tokens,
                       "audio_tokens": self.audio_output_tokens}  # fmt: skip
            out["completion_tokens_details"] = details
        return out


def usage_from(body: Mapping[str, Any]) -> Usage | None:
    """The usage a response, stream chunk or event reports, in any shape above; None if none."""
    u, tier = _find(body)
    if u is None:
        return _llama_timings(body)
    usage: Usage | None
    if "usageMetadata" in body or "promptTokenCount" in u:
        usage = _gemini(u)
    elif "prompt_tokens" in u:
        usage = _openai(u)
    elif "input_tokens" in u or "output_tokens" in u:
        usage = _anthropic(u) if _anthropic_shaped(u) else _responses(u)
    else:
        return None
    if usage is None:
        return None
    tier = u.get("service_tier") if isinstance(u.get("service_tier"), str) else tier
    return replace(usage, service_tier=tier) if tier else usage


def _find(body: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str | None]:
    """The usage mapping and the service tier beside it, in a body, chunk or event."""
    for holder in (body, body.get("response"), body.get("message")):  # Responses / Anthropic
        if not isinstance(holder, Mapping):
            continue
        tier = holder.get("service_tier")
        tier = tier if isinstance(tier, str) else None
        for key in ("usage", "usageMetadata"):
            u = holder.get(key)
            if isinstance(u, Mapping):
                return u, tier
    if _int(body.get("prompt_tokens")) is not None or _int(body.get("input_tokens")) is not None:
        return body, None  # a bare usage mapping
    return None, None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _n(d: Any, key: str) -> int:
    return (_int(d.get(key)) or 0) if isinstance(d, Mapping) else 0


def _openai(u: Mapping[str, Any]) -> Usage | None:
    prompt = _int(u.get("prompt_tokens"))
    if prompt is None:
        return None
    completion = _n(u, "completion_tokens")
    pd, cd = u.get("prompt_tokens_details"), u.get("completion_tokens_details")
    cached = _n(pd, "cached_tokens") or _n(u, "cache_read_input_tokens")
    if "prompt_cache_hit_tokens" in u:  # DeepSeek
        cached = _n(u, "prompt_cache_hit_tokens")
        prompt = max(prompt, cached + _n(u, "prompt_cache_miss_tokens"))
    writes = _n(pd, "cache_creation_tokens") or _n(u, "cache_creation_input_tokens")
    by_ttl = pd.get("cache_creation_token_details") if isinstance(pd, Mapping) else None
    w1h = _n(by_ttl, "ephemeral_1h_input_tokens")
    reasoning = _n(cd, "reasoning_tokens")
    total = _int(u.get("total_tokens"))
    if reasoning and total is not None and total == prompt + completion + reasoning:
        completion += reasoning  # thinking tokens reported outside completion_tokens (Gemini)
    return Usage(prompt, completion, cached_tokens=cached,
                 cache_write_tokens=max(0, writes - w1h), cache_write_1h_tokens=min(w1h, writes),
                 reasoning_tokens=min(reasoning, completion),
                 audio_input_tokens=_n(pd, "audio_tokens"),
                 audio_output_tokens=_n(cd, "audio_tokens"),
                 image_input_tokens=_n(pd, "image_tokens"))  # fmt: skip


def _anthropic_shaped(u: Mapping[str, Any]) -> bool:
    return any(k in u for k in ("cache_read_input_tokens", "cache_creation_input_tokens",
                                "cache_creation"))  # fmt: skip


def _anthropic(u: Mapping[str, Any]) -> Usage:
    """Anthropic Messages: reads and writes come *in addition to* `input_tokens`."""
    read, writes = _n(u, "cache_read_input_tokens"), _n(u, "cache_creation_input_tokens")
    w1h = _n(u.get("cache_creation"), "ephemeral_1h_input_tokens")
    return Usage(_n(u, "input_tokens") + read + writes, _n(u, "output_tokens"),
                 cached_tokens=read, cache_write_tokens=max(0, writes - w1h),
                 cache_write_1h_tokens=min(w1h, writes))  # fmt: skip


def _responses(u: Mapping[str, Any]) -> Usage:
    """OpenAI Responses: details are subsets of `input_tokens` / `output_tokens`."""
    output = _n(u, "output_tokens")
    od = u.get("output_tokens_details")
    return Usage(_n(u, "input_tokens"), output,
                 cached_tokens=_n(u.get("input_tokens_details"), "cached_tokens"),
                 reasoning_tokens=min(_n(od, "reasoning_tokens"), output))  # fmt: skip


def _gemini(u: Mapping[str, Any]) -> Usage:
    """Gemini `usageMetadata`: thoughts are billed as output but not in candidates; tool-use
    prompt tokens are billed as input."""
    thoughts = _n(u, "thoughtsTokenCount")
    prompt = _n(u, "promptTokenCount") + _n(u, "toolUsePromptTokenCount")
    modal = {"AUDIO": 0, "IMAGE": 0}
    for d in u.get("promptTokensDetails") or ():
        if isinstance(d, Mapping) and d.get("modality") in modal:
            modal[str(d["modality"])] += _n(d, "tokenCount")
    return Usage(prompt, _n(u, "candidatesTokenCount") + thoughts,
                 cached_tokens=_n(u, "cachedContentTokenCount"), reasoning_tokens=thoughts,
                 audio_input_tokens=modal["AUDIO"], image_input_tokens=modal["IMAGE"])  # fmt: skip


def _llama_timings(body: Mapping[str, Any]) -> Usage | None:
    """llama.cpp's `timings` when no usage came: `cache_n` prompt tokens were reused."""
    t = body.get("timings")
    if not isinstance(t, Mapping) or _int(t.get("prompt_n")) is None:
        return None
    cached = _n(t, "cache_n")
    return Usage(_n(t, "prompt_n") + cached, _n(t, "predicted_n"), cached_tokens=cached)
