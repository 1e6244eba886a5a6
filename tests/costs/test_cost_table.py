"""Real usage payloads of each upstream shape, normalised (gateway.usage) and priced
(gateway.pricing) with prices read from litellm's bundled map (or configured, for local
models), each against its cost computed by hand from the provider's published rates.

Published rates used (USD per million tokens; the same figures litellm 1.110.2's map holds):
    gpt-4.1            input 2.00, cached 0.50, output 8.00; priority x1.75
    gpt-5              input 1.25, cached 0.125, output 10.00 (reasoning bills as output)
    gpt-5.5            input 5.00, cached 0.50, output 30.00; above 272k prompt tokens 10.00 /
                       1.00 / 45.00; priority x2.5, flex x0.5
    claude-sonnet-4-5  input 3.00, cache read 0.30, cache write 3.75 (5 min) / 6.00 (1 h),
                       output 15.00
    gemini-2.5-pro     input 1.25, cached 0.125, output 10.00 (thinking bills as output);
                       above 200k prompt tokens 2.50 / 0.25 / 15.00
    deepseek-chat      input 0.28 (cache miss), 0.028 (cache hit), output 0.42

Each row says whether litellm's own `completion_cost` agrees (checked here, within a
micro-dollar) and, where it does not, why Frugal differs."""

import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from gateway.config import ModelConfig, Price
from gateway.pricing import cost
from gateway.usage import Usage, usage_from

D = Decimal
M = Decimal(1_000_000)
MICRO = Decimal("0.000001")


def mapped(model: str) -> Price:
    """The price a model without `price:` gets: from litellm's map, by its id."""
    return ModelConfig(provider="litellm", model=model).price


LOCAL = Price(input_per_mtok=D("0.01"), output_per_mtok=D("0.03"))
LOCAL_CACHED = Price(input_per_mtok=D("0.01"), output_per_mtok=D("0.03"),
                     cached_input_per_mtok=D("0.001"))  # fmt: skip


@dataclass(frozen=True)
class Row:
    name: str
    payload: dict[str, Any]  # the upstream's response body, chunk or event, as sent
    price: Callable[[], Price]
    expected: Decimal  # by hand, from the published rates
    classes: dict[str, int]  # the token classes Frugal reads from the payload
    litellm: tuple[str, dict[str, Any]] | None  # (model, usage as litellm sees it) to compare
    litellm_agrees: bool
    why: str  # where litellm disagrees (or cannot price it): why Frugal differs
    service_tier: str | None = None


def _cls(inp: int, cached: int, w5: int, w1h: int, out: int, reasoning: int) -> dict[str, int]:
    return {"input_uncached": inp, "input_cached": cached, "input_cache_write": w5,
            "input_cache_write_1h": w1h, "output": out, "output_reasoning": reasoning}  # fmt: skip


# fmt: off
ROWS = [
    Row(
        "openai chat gpt-4.1, 8k of 10k prompt cached",
        {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1-2025-04-14",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 10_000, "completion_tokens": 100, "total_tokens": 10_100,
                   "prompt_tokens_details": {"cached_tokens": 8_000, "audio_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                 "accepted_prediction_tokens": 0,
                                                 "rejected_prediction_tokens": 0}},
         "service_tier": "default"},
        lambda: mapped("gpt-4.1"),
        (2_000 * D("2.00") + 8_000 * D("0.50") + 100 * D("8.00")) / M,  # $0.0088
        _cls(2_000, 8_000, 0, 0, 100, 0),
        ("gpt-4.1", {"prompt_tokens": 10_000, "completion_tokens": 100, "total_tokens": 10_100,
                     "prompt_tokens_details": {"cached_tokens": 8_000}}),
        True, "",
    ),
    Row(
        "openai chat gpt-5, cached prompt and reasoning",
        {"object": "chat.completion", "model": "gpt-5",
         "usage": {"prompt_tokens": 5_000, "completion_tokens": 1_200, "total_tokens": 6_200,
                   "prompt_tokens_details": {"cached_tokens": 4_096},
                   "completion_tokens_details": {"reasoning_tokens": 1_000}}},
        lambda: mapped("gpt-5"),
        (904 * D("1.25") + 4_096 * D("0.125") + 1_200 * D("10.00")) / M,  # $0.013642
        _cls(904, 4_096, 0, 0, 200, 1_000),
        ("gpt-5", {"prompt_tokens": 5_000, "completion_tokens": 1_200, "total_tokens": 6_200,
                   "prompt_tokens_details": {"cached_tokens": 4_096},
                   "completion_tokens_details": {"reasoning_tokens": 1_000}}),
        True, "",
    ),
    Row(
        "openai responses gpt-5, response.completed event with cached and reasoning",
        {"type": "response.completed", "sequence_number": 42,
         "response": {"id": "resp_1", "object": "response", "status": "completed",
                      "model": "gpt-5", "service_tier": "default",
                      "usage": {"input_tokens": 3_000,
                                "input_tokens_details": {"cached_tokens": 2_048},
                                "output_tokens": 500,
                                "output_tokens_details": {"reasoning_tokens": 384},
                                "total_tokens": 3_500}}},
        lambda: mapped("gpt-5"),
        (952 * D("1.25") + 2_048 * D("0.125") + 500 * D("10.00")) / M,  # $0.006446
        _cls(952, 2_048, 0, 0, 116, 384),
        ("gpt-5", {"prompt_tokens": 3_000, "completion_tokens": 500, "total_tokens": 3_500,
                   "prompt_tokens_details": {"cached_tokens": 2_048},
                   "completion_tokens_details": {"reasoning_tokens": 384}}),
        True, "",
    ),
    Row(
        "anthropic messages claude-sonnet-4-5, agent turn: 55k cache read, 3k 5-min write",
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
         "usage": {"input_tokens": 2_000, "cache_read_input_tokens": 55_000,
                   "cache_creation_input_tokens": 3_000,
                   "cache_creation": {"ephemeral_5m_input_tokens": 3_000,
                                      "ephemeral_1h_input_tokens": 0},
                   "output_tokens": 800, "service_tier": "standard"}},
        lambda: mapped("anthropic/claude-sonnet-4-5"),
        (2_000 * D("3.00") + 55_000 * D("0.30") + 3_000 * D("3.75") + 800 * D("15.00")) / M,
        _cls(2_000, 55_000, 3_000, 0, 800, 0),  # $0.04575 (a flat formula: $0.192)
        ("claude-sonnet-4-5", {"anthropic": {"input_tokens": 2_000,
                                             "cache_read_input_tokens": 55_000,
                                             "cache_creation_input_tokens": 3_000,
                                             "output_tokens": 800}}),
        True, "",
    ),
    Row(
        "anthropic message_start event, 1-hour and 5-minute cache writes",
        {"type": "message_start",
         "message": {"id": "msg_2", "type": "message", "role": "assistant", "content": [],
                     "model": "claude-sonnet-4-5",
                     "usage": {"input_tokens": 500, "cache_read_input_tokens": 0,
                               "cache_creation_input_tokens": 4_000,
                               "cache_creation": {"ephemeral_5m_input_tokens": 1_000,
                                                  "ephemeral_1h_input_tokens": 3_000},
                               "output_tokens": 200}}},
        lambda: mapped("claude-sonnet-4-5"),
        (500 * D("3.00") + 1_000 * D("3.75") + 3_000 * D("6.00") + 200 * D("15.00")) / M,
        _cls(500, 0, 1_000, 3_000, 200, 0),  # $0.02625
        ("claude-sonnet-4-5", {"anthropic": {"input_tokens": 500, "cache_read_input_tokens": 0,
                                             "cache_creation_input_tokens": 4_000,
                                             "cache_creation": {
                                                 "ephemeral_5m_input_tokens": 1_000,
                                                 "ephemeral_1h_input_tokens": 3_000},
                                             "output_tokens": 200}}),
        True, "",
    ),
    Row(
        "anthropic through litellm (OpenAI shape: reads and writes folded into prompt_tokens)",
        {"object": "chat.completion", "model": "claude-sonnet-4-5",
         "usage": {"prompt_tokens": 60_000, "completion_tokens": 800, "total_tokens": 60_800,
                   "prompt_tokens_details": {"cached_tokens": 55_000,
                                             "cache_creation_tokens": 3_000,
                                             "text_tokens": 2_000},
                   "cache_creation_input_tokens": 3_000, "cache_read_input_tokens": 55_000}},
        lambda: mapped("anthropic/claude-sonnet-4-5"),
        (2_000 * D("3.00") + 55_000 * D("0.30") + 3_000 * D("3.75") + 800 * D("15.00")) / M,
        _cls(2_000, 55_000, 3_000, 0, 800, 0),
        ("claude-sonnet-4-5", {"prompt_tokens": 60_000, "completion_tokens": 800,
                               "total_tokens": 60_800,
                               "prompt_tokens_details": {"cached_tokens": 55_000,
                                                         "cache_creation_tokens": 3_000},
                               "cache_creation_input_tokens": 3_000,
                               "cache_read_input_tokens": 55_000}),
        True, "",
    ),
    Row(
        "gemini-2.5-pro usageMetadata below 200k: 100k cached, thinking tokens",
        {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 120_000, "cachedContentTokenCount": 100_000,
                           "candidatesTokenCount": 1_000, "thoughtsTokenCount": 2_000,
                           "totalTokenCount": 123_000,
                           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 120_000}]},
         "modelVersion": "gemini-2.5-pro"},
        lambda: mapped("gemini/gemini-2.5-pro"),
        (20_000 * D("1.25") + 100_000 * D("0.125") + 3_000 * D("10.00")) / M,  # $0.0675
        _cls(20_000, 100_000, 0, 0, 1_000, 2_000),
        ("gemini/gemini-2.5-pro", {"prompt_tokens": 120_000, "completion_tokens": 3_000,
                                   "total_tokens": 123_000,
                                   "prompt_tokens_details": {"cached_tokens": 100_000},
                                   "completion_tokens_details": {"reasoning_tokens": 2_000}}),
        True, "",
    ),
    Row(
        "gemini-2.5-pro usageMetadata above 200k: the whole request at the long-context rates",
        {"usageMetadata": {"promptTokenCount": 250_000, "candidatesTokenCount": 2_000,
                           "thoughtsTokenCount": 1_000, "totalTokenCount": 253_000},
         "modelVersion": "gemini-2.5-pro"},
        lambda: mapped("gemini/gemini-2.5-pro"),
        (250_000 * D("2.50") + 3_000 * D("15.00")) / M,  # $0.67 (the base rates: $0.3425)
        _cls(250_000, 0, 0, 0, 2_000, 1_000),
        ("gemini/gemini-2.5-pro", {"prompt_tokens": 250_000, "completion_tokens": 3_000,
                                   "total_tokens": 253_000,
                                   "completion_tokens_details": {"reasoning_tokens": 1_000}}),
        True, "",
    ),
    Row(
        "gemini OpenAI-compatible endpoint: thinking reported outside completion_tokens",
        {"object": "chat.completion", "model": "gemini-2.5-pro",
         "usage": {"prompt_tokens": 1_000, "completion_tokens": 200, "total_tokens": 1_500,
                   "completion_tokens_details": {"reasoning_tokens": 300}}},
        lambda: mapped("gemini/gemini-2.5-pro"),
        (1_000 * D("1.25") + 500 * D("10.00")) / M,  # $0.00625
        _cls(1_000, 0, 0, 0, 200, 300),
        ("gemini/gemini-2.5-pro", {"prompt_tokens": 1_000, "completion_tokens": 200,
                                   "total_tokens": 1_500,
                                   "completion_tokens_details": {"reasoning_tokens": 300}}),
        False,
        "litellm takes reasoning as part of completion_tokens (its own Gemini adapter folds it "
        "in); Gemini's OpenAI-compatible endpoint reports it beside (total = prompt + "
        "completion + reasoning), so litellm bills 300 output tokens ($0.00425) where Google "
        "bills 500. Frugal reads the total and adds the thinking tokens back.",
    ),
    Row(
        "deepseek-chat cache hit",
        {"object": "chat.completion", "model": "deepseek-chat",
         "usage": {"prompt_tokens": 10_000, "completion_tokens": 500, "total_tokens": 10_500,
                   "prompt_tokens_details": {"cached_tokens": 6_000},
                   "prompt_cache_hit_tokens": 6_000, "prompt_cache_miss_tokens": 4_000}},
        lambda: mapped("deepseek/deepseek-chat"),
        (4_000 * D("0.28") + 6_000 * D("0.028") + 500 * D("0.42")) / M,  # $0.001498
        _cls(4_000, 6_000, 0, 0, 500, 0),
        ("deepseek/deepseek-chat", {"prompt_tokens": 10_000, "completion_tokens": 500,
                                    "total_tokens": 10_500, "prompt_cache_hit_tokens": 6_000,
                                    "prompt_cache_miss_tokens": 4_000}),
        True, "",
    ),
    Row(
        "deepseek-chat cache miss",
        {"object": "chat.completion", "model": "deepseek-chat",
         "usage": {"prompt_tokens": 10_000, "completion_tokens": 500, "total_tokens": 10_500,
                   "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 10_000}},
        lambda: mapped("deepseek/deepseek-chat"),
        (10_000 * D("0.28") + 500 * D("0.42")) / M,  # $0.00301
        _cls(10_000, 0, 0, 0, 500, 0),
        ("deepseek/deepseek-chat", {"prompt_tokens": 10_000, "completion_tokens": 500,
                                    "total_tokens": 10_500, "prompt_cache_hit_tokens": 0,
                                    "prompt_cache_miss_tokens": 10_000}),
        True, "",
    ),
    Row(
        "llama.cpp usage with cached prompt tokens (configured local price, no cached rate)",
        {"object": "chat.completion", "model": "smollm2",
         "usage": {"completion_tokens": 40, "prompt_tokens": 120, "total_tokens": 160,
                   "prompt_tokens_details": {"cached_tokens": 100}},
         "timings": {"cache_n": 100, "prompt_n": 20, "prompt_ms": 12.5, "predicted_n": 40,
                     "predicted_ms": 400.0}},
        lambda: LOCAL,
        (120 * D("0.01") + 40 * D("0.03")) / M,  # cached bills as input: no cached rate set
        _cls(20, 100, 0, 0, 40, 0),
        None, False, "a local model: not in litellm's map, priced by its configured price",
    ),
    Row(
        "llama.cpp timings only (no usage object), with a configured cached rate",
        {"object": "chat.completion", "model": "smollm2",
         "timings": {"cache_n": 100, "prompt_n": 20, "predicted_n": 40}},
        lambda: LOCAL_CACHED,
        (20 * D("0.01") + 100 * D("0.001") + 40 * D("0.03")) / M,
        _cls(20, 100, 0, 0, 40, 0),
        None, False, "a local model: not in litellm's map, priced by its configured price",
    ),
    Row(
        "openai gpt-5.5 served on the priority tier (reported by the response)",
        {"object": "chat.completion", "model": "gpt-5.5", "service_tier": "priority",
         "usage": {"prompt_tokens": 10_000, "completion_tokens": 1_000, "total_tokens": 11_000}},
        lambda: mapped("gpt-5.5"),
        (10_000 * D("5.00") + 1_000 * D("30.00")) * D("2.5") / M,  # $0.20
        _cls(10_000, 0, 0, 0, 1_000, 0),
        ("gpt-5.5", {"prompt_tokens": 10_000, "completion_tokens": 1_000,
                     "total_tokens": 11_000, "service_tier": "priority"}),
        True, "",
    ),
    Row(
        "openai gpt-5.5 above 272k prompt tokens",
        {"object": "chat.completion", "model": "gpt-5.5",
         "usage": {"prompt_tokens": 300_000, "completion_tokens": 1_000,
                   "total_tokens": 301_000}},
        lambda: mapped("gpt-5.5"),
        (300_000 * D("10.00") + 1_000 * D("45.00")) / M,  # $3.045
        _cls(300_000, 0, 0, 0, 1_000, 0),
        ("gpt-5.5", {"prompt_tokens": 300_000, "completion_tokens": 1_000,
                     "total_tokens": 301_000}),
        True, "",
    ),
]
# fmt: on


@pytest.fixture(scope="module")
def litellm_cost() -> Callable[[str, dict[str, Any]], Decimal]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig
    from litellm.types.utils import ModelResponse
    from litellm.types.utils import Usage as LiteUsage

    def priced(model: str, usage: dict[str, Any]) -> Decimal:
        tier = usage.pop("service_tier", None)
        if "anthropic" in usage:  # a native payload: through litellm's own Anthropic adapter
            u = AnthropicConfig().calculate_usage(usage["anthropic"], None)
        else:
            u = LiteUsage(**usage)
        kw = {"service_tier": tier} if tier else {}
        c = litellm.completion_cost(completion_response=ModelResponse(model=model, usage=u),
                                    model=model, **kw)  # fmt: skip
        return Decimal(repr(c))

    return priced


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_cost_to_the_micro_dollar(
    row: Row, litellm_cost: Callable[[str, dict[str, Any]], Decimal]
) -> None:
    usage = usage_from(row.payload)
    assert usage is not None and not usage.estimated
    assert usage.classes() == row.classes
    got = cost(usage, row.price(), row.service_tier)
    assert got == row.expected.quantize(Decimal("0.00000001"))
    assert got.quantize(MICRO) == row.expected.quantize(MICRO)
    if row.litellm is None:
        assert not row.litellm_agrees and row.why
        return
    model, lite_usage = row.litellm
    theirs = litellm_cost(model, dict(lite_usage))
    agrees = abs(theirs - got) < MICRO
    assert agrees == row.litellm_agrees, (theirs, got, row.why)
    assert agrees or row.why


def test_a_flat_formula_would_have_been_4x_over() -> None:
    """The issue's agent turn: the flat `prompt x input + completion x output` bill."""
    u = usage_from(ROWS[3].payload)
    assert u is not None
    p = mapped("claude-sonnet-4-5")
    flat = Usage(u.prompt_tokens, u.completion_tokens)
    assert cost(flat, p) == D("0.192") and cost(u, p) == D("0.04575")


def test_service_tiers_and_batch() -> None:
    p = mapped("gpt-5.5")
    u = Usage(10_000, 1_000)
    base = (10_000 * D("5.00") + 1_000 * D("30.00")) / M
    assert cost(u, p, "flex") == base * D("0.5")
    assert cost(u, p, "batch") == base * D("0.5")
    assert cost(u, p, "default") == cost(u, p, "auto") == cost(u, p) == base


def test_reasoning_and_audio_priced_apart_where_configured() -> None:
    p = Price(input_per_mtok=D(1), output_per_mtok=D(2), reasoning_per_mtok=D(4),
              audio_input_per_mtok=D(10), audio_output_per_mtok=D(20))  # fmt: skip
    u = usage_from({"usage": {"prompt_tokens": 100, "completion_tokens": 50,
                              "prompt_tokens_details": {"audio_tokens": 30},
                              "completion_tokens_details": {"reasoning_tokens": 10,
                                                            "audio_tokens": 5}}})  # fmt: skip
    assert u is not None
    want = (70 * 1 + 30 * 10 + 35 * 2 + 10 * 4 + 5 * 20) / M
    assert cost(u, p) == want.quantize(Decimal("0.00000001"))
