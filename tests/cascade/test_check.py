"""`cascade.check`: the fixed checks first, then the verifier; a tool call is not verified and a
verifier that fails keeps the small answer (the request never fails because of the check)."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway import cascade
from gateway.config import CascadeConfig

MSG = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many?"}]


def _body(content: Any, **choice: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {"choices": [{"index": 0, "finish_reason": "stop", "message": message, **choice}]}


def test_fixed_checks_come_first_and_the_verifier_decides_the_rest(verifier_file: Path) -> None:
    cfg = CascadeConfig(verifier=str(verifier_file))
    assert asyncio.run(cascade.check(_body(""), cfg, MSG)).reason == "empty"
    wrong = asyncio.run(cascade.check(_body("3 + 4 = 8."), cfg, MSG))
    assert wrong.reason is not None and wrong.reason.startswith("verifier verifier-test 0.98")
    ok = asyncio.run(cascade.check(_body("3 + 4 = 7."), cfg, MSG))
    assert ok.reason is None and ok.score is not None and ok.score < 0.5
    strict = CascadeConfig(verifier=str(verifier_file), threshold=0.1)  # the route's own
    assert asyncio.run(cascade.check(_body("3 + 4 = 7."), strict, MSG)).reason is not None


def test_a_tool_call_is_not_verified(verifier_file: Path) -> None:
    cfg = CascadeConfig(verifier=str(verifier_file))
    body = _body(None, finish_reason="tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [{"id": "1", "type": "function"}]
    verdict = asyncio.run(cascade.check(body, cfg, MSG))
    assert verdict.reason is None and verdict.score is None


def test_a_failing_verifier_keeps_the_answer(
    verifier_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = CascadeConfig(verifier=str(verifier_file))
    verifier = cascade.verifier_of(cfg)
    assert verifier is not None

    def broken(*args: Any) -> float:
        raise RuntimeError("boom")

    monkeypatch.setattr(verifier, "score", broken)
    verdict = asyncio.run(cascade.check(_body("3 + 4 = 8."), cfg, MSG))
    assert verdict.reason is None and "failed: kept" in verdict.note


def test_the_extra_fields_asked_and_hidden() -> None:
    extra = {"logprobs": True, "top_logprobs": 5, "n": 2, "stream": None, "stream_options": None}
    sent = cascade.merged({"model": "m", "stream": True, "stream_options": {}}, extra)
    assert sent == {"model": "m", "logprobs": True, "top_logprobs": 5, "n": 2}
    body = {"choices": [{"index": 0, "logprobs": {"content": []}}, {"index": 1}]}
    cascade.without_extra(body, sent, {"model": "m"})
    assert body == {"choices": [{"index": 0, "logprobs": None}]}
