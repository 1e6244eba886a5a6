"""Routing that respects what a model can take (issue 16 item 4): images go to a vision-capable
tier, a prompt over a model's window to one that fits, tools to a tool-capable model, and an
upstream's `context_length_exceeded` falls back to a larger window without cooling the model.
The reason header says which capability decided."""

from typing import Any

import openai
import pytest

from gateway.capabilities import Needs, has_images, of, refusal
from gateway.config import ModelConfig
from tests.routing.conftest import Routed

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
]


def _ask(gw: Routed, content: Any, model: str = "auto", **kw: Any) -> tuple[Any, Any]:
    raw = gw.client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )
    return raw.parse(), raw.headers


def test_plain_prompt_stays_on_the_small_tier(gw: Routed) -> None:
    _, headers = _ask(gw, "Say hello")
    assert headers["x-frugal-model"] == "small-a"
    assert "cannot take" not in headers["x-frugal-route-reason"]


def test_image_goes_to_the_vision_capable_tier(gw: Routed) -> None:
    _, headers = _ask(gw, [{"type": "text", "text": "What is this?"}, IMAGE])
    assert headers["x-frugal-model"] == "large-a"
    assert headers["x-frugal-tier"] == "large"
    reason = headers["x-frugal-route-reason"]
    assert "tier small cannot take it (no vision (the request has images)), routed to large" in (
        reason
    )
    assert [r["model"] for r in gw.fake.requests] == ["fake-large"]


def test_tools_go_to_a_tool_capable_model(gw: Routed) -> None:
    resp, headers = _ask(gw, "Look up x", tools=TOOLS)
    assert headers["x-frugal-model"] == "large-a"
    assert "no tool calling" in headers["x-frugal-route-reason"]
    assert resp.choices[0].message.tool_calls[0].function.name == "lookup"


def test_prompt_over_the_window_goes_to_a_larger_one(gw: Routed) -> None:
    long = " ".join(["word"] * 400)  # ~400 tokens: over small-a's 300
    _, headers = _ask(gw, long)
    assert headers["x-frugal-model"] == "large-a"
    assert "window of 300 tokens" in headers["x-frugal-route-reason"]
    assert [r["model"] for r in gw.fake.requests] == ["fake-large"]


def test_context_length_exceeded_falls_back_to_a_larger_window(gw: Routed) -> None:
    # The gateway's estimate fits small-a's declared window; the upstream disagrees.
    gw.fake.script.context_windows = {"fake-small": 20}
    prompt = " ".join(["word"] * 40)
    resp, headers = _ask(gw, prompt)
    assert headers["x-frugal-model"] == "large-a"
    assert resp.model == "large-a"
    assert [r["model"] for r in gw.fake.requests] == ["fake-small", "fake-large"]
    # The small model is not cooled down: the request was at fault, not the model.
    _, headers = _ask(gw, "Say hello")
    assert headers["x-frugal-model"] == "small-a"


def test_context_length_exceeded_streamed_falls_back(gw: Routed) -> None:
    gw.fake.script.context_windows = {"fake-small": 20}
    with gw.client.chat.completions.with_streaming_response.create(
        model="auto", stream=True,
        messages=[{"role": "user", "content": " ".join(["word"] * 40)}],
    ) as raw:  # fmt: skip
        assert raw.headers["x-frugal-model"] == "large-a"
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.startswith("Frugal")
    assert [r["model"] for r in gw.fake.requests] == ["fake-small", "fake-large"]


def test_context_length_exceeded_without_a_larger_window_is_the_clients_error(
    gw: Routed,
) -> None:
    gw.fake.script.context_windows = {"fake-small": 20, "fake-large": 20}
    with pytest.raises(openai.BadRequestError) as e:
        _ask(gw, " ".join(["word"] * 40))
    assert e.value.code == "context_length_exceeded"
    assert [r["model"] for r in gw.fake.requests] == ["fake-small", "fake-large"]


def test_a_pinned_model_is_not_rerouted(gw: Routed) -> None:
    gw.fake.script.context_windows = {"fake-small": 20}
    with pytest.raises(openai.BadRequestError) as e:
        _ask(gw, " ".join(["word"] * 40), model="small-a")
    assert e.value.code == "context_length_exceeded"
    assert [r["model"] for r in gw.fake.requests] == ["fake-small"]


def test_no_model_of_the_route_can_take_it(gw: Routed) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        _ask(gw, [{"type": "text", "text": "What is this?"}, IMAGE], model="small-only")
    assert e.value.code == "no_capable_model"
    assert "small-a: no vision" in e.value.message
    assert gw.fake.requests == []


def test_capabilities_come_from_litellms_map_when_not_declared() -> None:
    cfg = ModelConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
    cap = of(cfg)
    assert cap.max_input_tokens == 128_000 and cap.vision is True and cap.tools is True
    declared = ModelConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", vision=False,
                           max_input_tokens=1000)  # fmt: skip
    assert (of(declared).vision, of(declared).max_input_tokens) == (False, 1000)
    unknown = of(ModelConfig(model="my-local", base_url="http://127.0.0.1:9/v1",
                             price={"input_per_mtok": 0, "output_per_mtok": 0}))  # fmt: skip
    assert (unknown.max_input_tokens, unknown.vision, unknown.tools) == (None, None, None)
    assert refusal(unknown, Needs(10**6, images=True, tools=True)) is None  # unknown: assumed


def test_apis_decide_who_can_take_a_request() -> None:
    anthropic = of(ModelConfig(model="claude-sonnet-4-5", base_url="http://127.0.0.1:9/v1",
                               apis=("messages",)))  # fmt: skip
    assert refusal(anthropic, Needs(10, api="chat")) == "does not speak the chat API"
    assert refusal(anthropic, Needs(10, api="messages")) is None
    chat = of(ModelConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1"))
    assert refusal(chat, Needs(10, api="responses")) is None  # bridged
    assert refusal(chat, Needs(10, api="responses", native=True)) is not None


def test_config_rejects_what_cannot_work() -> None:
    from pydantic import ValidationError

    from gateway.config import RouteConfig

    with pytest.raises(ValidationError, match="apis other than chat need provider 'openai'"):
        ModelConfig(provider="litellm", model="anthropic/claude-sonnet-4-5", apis=("messages",))
    with pytest.raises(ValidationError):
        ModelConfig(model="m", base_url="http://127.0.0.1:9/v1", apis=("grpc",))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ModelConfig(model="m", base_url="http://127.0.0.1:9/v1", apis=())
    with pytest.raises(ValidationError):
        RouteConfig(tiers=["small"], affinity={"window_s": 0})  # type: ignore[list-item,arg-type]
    with pytest.raises(ValidationError):
        RouteConfig(tiers=["small"], affinity={"window": 60})  # type: ignore[list-item,arg-type]


def test_a_content_part_whose_type_is_not_a_string_is_no_image() -> None:
    odd = [{"role": "user", "content": [{"type": []}, {"type": {"a": 1}}, {"type": "text"}]}]
    assert has_images(odd) is False
    assert has_images([{"role": "user", "content": [{"type": "image_url"}]}]) is True
