"""The cascade's cheap checks on a small model's answer."""

from typing import Any

from gateway.cascade import escalation_reason
from gateway.config import CascadeConfig


def _chat(
    content: Any, finish: str = "stop", logprobs: list[float] | None = None
) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish,
                              "message": {"role": "assistant", "content": content}}  # fmt: skip
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "x", "logprob": v} for v in logprobs]}
    return {"choices": [choice]}


CFG = CascadeConfig()


def test_a_good_answer_passes() -> None:
    assert escalation_reason(_chat("Paris is the capital of France."), CFG) is None


def test_empty_truncated_and_refusing_answers_escalate() -> None:
    assert escalation_reason(_chat("  "), CFG) == "empty"
    assert escalation_reason(_chat(None), CFG) == "empty"
    assert escalation_reason({"choices": []}, CFG) == "empty"
    assert escalation_reason(_chat("Paris is", finish="length"), CFG) == "truncated"
    assert escalation_reason(_chat("I'm sorry, but I can't help with that."), CFG) == "refusal"
    assert escalation_reason(_chat("As an AI language model, I ..."), CFG) == "refusal"


def test_tool_calls_are_answers() -> None:
    body = {"choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}}]}  # fmt: skip
    assert escalation_reason(body, CFG) is None


def test_low_mean_logprob_escalates_only_when_configured_and_present() -> None:
    cfg = CascadeConfig(min_mean_logprob=-1.0)
    assert escalation_reason(_chat("ok", logprobs=[-0.1, -0.3]), cfg) is None
    assert escalation_reason(_chat("ok", logprobs=[-2.0, -3.0]), cfg) == "low_logprob(-2.50<-1)"
    assert escalation_reason(_chat("ok"), cfg) is None  # no logprobs returned: no verdict
    assert escalation_reason(_chat("ok", logprobs=[-2.0, -3.0]), CFG) is None  # not configured
    completion = {"choices": [{"text": "ok", "finish_reason": "stop",
                               "logprobs": {"token_logprobs": [-4.0, None]}}]}  # fmt: skip
    assert escalation_reason(completion, cfg) == "low_logprob(-4.00<-1)"


def test_checks_can_be_turned_off() -> None:
    cfg = CascadeConfig(escalate_on=("empty",))
    assert escalation_reason(_chat("Paris is", finish="length"), cfg) is None
