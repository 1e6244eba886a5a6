"""`usage_from` on the edges of each shape: what is not usage is None, never an exception."""

from typing import Any

import pytest

from gateway.usage import Usage, usage_from


@pytest.mark.parametrize("body", [
    {}, {"choices": []}, {"usage": None}, {"usage": "lots"}, {"usage": {"prompt_tokens": "9"}},
    {"usage": {"prompt_tokens": True, "completion_tokens": 1}}, {"timings": {"cache_n": 3}},
    {"type": "response.output_text.delta", "delta": "hi"}, {"type": "ping"},
])  # fmt: skip
def test_no_usage_is_none(body: dict[str, Any]) -> None:
    assert usage_from(body) is None


def test_bad_detail_values_are_ignored() -> None:
    u = usage_from({"usage": {"prompt_tokens": 10, "completion_tokens": 5,
                              "prompt_tokens_details": {"cached_tokens": -3},
                              "completion_tokens_details": {"reasoning_tokens": "x"}}})  # fmt: skip
    assert u == Usage(10, 5)


def test_reasoning_never_exceeds_the_output() -> None:
    u = usage_from({"usage": {"input_tokens": 10, "output_tokens": 5,
                              "output_tokens_details": {"reasoning_tokens": 50}}})  # fmt: skip
    assert u is not None and u.reasoning_tokens == 5 and u.classes()["output"] == 0


def test_anthropic_message_delta_reports_output_only() -> None:
    u = usage_from({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 15}})  # fmt: skip
    assert u == Usage(0, 15)


def test_a_bare_usage_mapping_and_the_service_tier() -> None:
    u = usage_from({"prompt_tokens": 7, "completion_tokens": 2, "service_tier": "flex"})
    assert u == Usage(7, 2, service_tier="flex")
    body = {"service_tier": "priority", "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    assert usage_from(body) == Usage(7, 2, service_tier="priority")


def test_as_openai_keeps_the_details() -> None:
    u = Usage(100, 20, cached_tokens=64, reasoning_tokens=8)
    again = usage_from({"usage": u.as_openai()})
    assert again == u
