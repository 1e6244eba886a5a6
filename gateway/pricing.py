"""Money is Decimal: one pure function of (usage, price, service tier).

    rates  = the price's long-context tier the prompt crossed (the whole request), else base
    cost   = uncached input x input + cached x cached_input + cache writes x their rates
           + (output - reasoning) x output + reasoning x reasoning rate   (+ audio where priced)
    cost  *= the service tier's multiplier (flex, priority), or (1 - batch_discount) for batch

A class without its own rate bills at its parent's (see `gateway.config.ClassRates`)."""

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from gateway.config import LongContext, Price
from gateway.usage import Usage

_MILLION = Decimal(1_000_000)
_CENT_FRACTION = Decimal("0.00000001")


def usd(amount: Decimal) -> str:
    """Dollars as a plain decimal string without trailing zeros: `0.0088`, `0` (never `0E-8`)."""
    return format(amount.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each class, every one resolved (no fallbacks left)."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    output: Decimal
    reasoning: Decimal
    audio_input: Decimal
    audio_output: Decimal


def rates(price: Price, prompt_tokens: int) -> Rates:
    """The rates a request with this many prompt tokens pays (its long-context tier)."""
    resolved = _resolved(price)
    i = 0
    for n, t in enumerate(price.long_context, 1):  # ascending
        if prompt_tokens > t.above_tokens:
            i = n
    return resolved[i]


# Resolved rates per Price (base, then each long-context tier), worked out once: id -> (the
# price, kept alive so its id is not reused, and its rates). Prices live as long as settings.
_RESOLVED: dict[int, tuple[Price, list[Rates]]] = {}


def _resolved(price: Price) -> list[Rates]:
    hit = _RESOLVED.get(id(price))
    if hit is not None and hit[0] is price:
        return hit[1]
    if len(_RESOLVED) > 4096:
        _RESOLVED.clear()
    out = [_resolve(price, None), *(_resolve(price, t) for t in price.long_context)]
    _RESOLVED[id(price)] = (price, out)
    return out


def _resolve(price: Price, tier: LongContext | None) -> Rates:
    def pick(name: str, parent: Decimal) -> Decimal:
        v = getattr(tier, name, None) if tier is not None else None
        if v is None:
            v = getattr(price, name)
        return parent if v is None else Decimal(v)

    inp = pick("input_per_mtok", price.input_per_mtok)
    out = pick("output_per_mtok", price.output_per_mtok)
    write = pick("cache_write_per_mtok", inp)
    return Rates(inp, pick("cached_input_per_mtok", inp), write,
                 pick("cache_write_1h_per_mtok", write), out, pick("reasoning_per_mtok", out),
                 pick("audio_input_per_mtok", inp), pick("audio_output_per_mtok", out))  # fmt: skip


def multiplier(price: Price, service_tier: str | None) -> Decimal:
    if service_tier is None:
        return Decimal(1)
    if service_tier == "batch":
        return 1 - price.batch_discount
    return price.service_tiers.get(service_tier, Decimal(1))


def breakdown(usage: Usage, price: Price, service_tier: str | None = None) -> dict[str, Decimal]:
    """USD by token class (`Usage.classes()` names, audio folded into input and output),
    unrounded; `cost` is their sum. Served on `service_tier`, else the one the usage reports."""
    r = rates(price, usage.prompt_tokens)
    u = usage
    audio_in = u.audio_input_tokens if price.audio_input_per_mtok is not None else 0
    audio_out = u.audio_output_tokens if price.audio_output_per_mtok is not None else 0
    plain_in = max(0, u.uncached_input_tokens - audio_in)
    plain_out = max(0, u.completion_tokens - u.reasoning_tokens - audio_out)
    tier = service_tier if service_tier is not None else u.service_tier
    k = multiplier(price, tier) / _MILLION
    return {
        "input_uncached": (plain_in * r.input + audio_in * r.audio_input) * k,
        "input_cached": u.cached_tokens * r.cached_input * k,
        "input_cache_write": u.cache_write_tokens * r.cache_write * k,
        "input_cache_write_1h": u.cache_write_1h_tokens * r.cache_write_1h * k,
        "output": (plain_out * r.output + audio_out * r.audio_output) * k,
        "output_reasoning": u.reasoning_tokens * r.reasoning * k,
    }


def cost(usage: Usage, price: Price, service_tier: str | None = None) -> Decimal:
    """What `usage` costs at `price`, served on `service_tier` (default: the one the upstream
    reported in the usage), quantized to 1e-8 USD."""
    return total(breakdown(usage, price, service_tier))


def total(parts: dict[str, Decimal]) -> Decimal:
    """The cost a `breakdown` adds up to, quantized to 1e-8 USD."""
    return sum(parts.values(), Decimal(0)).quantize(_CENT_FRACTION)


def served_tier(usage: Usage, body: dict[str, Any]) -> str | None:
    """The service tier to bill: the one the upstream reported, else the one requested
    (`auto` and `default` bill at the base rates)."""
    if usage.service_tier is not None:
        return usage.service_tier
    asked = body.get("service_tier")
    return asked if isinstance(asked, str) and asked not in ("auto", "default") else None


def ceiling(prompt_tokens: int, output_tokens: int, price: Price,
               service_tier: str | None = None) -> Decimal:  # fmt: skip
    """The most `prompt_tokens` in and `output_tokens` out can cost: every input token at the
    dearest input class (a cache write can cost 2x input), every output token at the dearest
    output class, at the long-context tier of this prompt, on `service_tier`."""
    r = rates(price, prompt_tokens)
    dear_in = max(r.input, r.cache_write, r.cache_write_1h, r.audio_input)
    dear_out = max(r.output, r.reasoning, r.audio_output)
    total = prompt_tokens * dear_in + output_tokens * dear_out
    return (total * multiplier(price, service_tier) / _MILLION).quantize(
        _CENT_FRACTION, rounding=ROUND_CEILING
    )


def output_rate(price: Price, prompt_tokens: int, service_tier: str | None = None) -> Decimal:
    """USD per output token at worst (for how many tokens a budget can still pay)."""
    r = rates(price, prompt_tokens)
    return max(r.output, r.reasoning, r.audio_output) * multiplier(price, service_tier) / _MILLION
