"""/v1/messages and /v1/messages/count_tokens through the official `anthropic` client, bridged
onto the fake OpenAI-compatible upstream: the request the upstream receives, the answer and the
stream the client reads, tools both ways, errors in Anthropic's shape, routing and the cache."""

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.apis.conftest import Gateway, ToolStreamingFake

TEXT = "Frugal routes each prompt to the cheapest good model."
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"  # a prefix
TOOLS: list[Any] = [
    {
        "name": "lookup",
        "description": "Look a thing up",
        "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
    }
]


@pytest.fixture
def client(gateway: Gateway, fake: ToolStreamingFake) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=gateway.url, api_key=gateway.keys["alpha"], max_retries=0
    ) as client:  # closed: no socket left to the garbage collector
        yield client


def test_create_translates_request_and_answer(
    client: anthropic.Anthropic, fake: ToolStreamingFake
) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    raw = client.messages.with_raw_response.create(
        model="small-a",
        max_tokens=50,
        stop_sequences=["\n\n"],
        output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}},
        extra_body={"temperature": 0.3},  # no longer a keyword of the 2026 SDK
        system=[{"type": "text", "text": "Be brief."}],
        metadata={"user_id": "u-1"},
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],  # type: ignore[list-item]
    )
    msg = raw.parse()
    sent = fake.requests[-1]
    assert sent["model"] == "fake-small"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    assert (sent["max_tokens"], sent["temperature"], sent["stop"], sent["user"]) == (
        50,
        0.3,
        ["\n\n"],
        "u-1",
    )
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True},
    }
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "small-a"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"
    assert msg.usage.output_tokens == 10 and msg.usage.input_tokens > 0
    assert raw.headers["x-frugal-model"] == "small-a"
    assert raw.headers["x-frugal-route"] == "pinned"


def test_cached_input_is_reported_apart(
    client: anthropic.Anthropic, fake: ToolStreamingFake
) -> None:
    fake.script.prompt_tokens = 100
    fake.script.usage_extra = {"prompt_tokens_details": {"cached_tokens": 80}}
    msg = client.messages.create(
        model="small-a", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
    )
    # Anthropic counts cache reads besides input_tokens; chat counts them inside prompt_tokens.
    assert msg.usage.input_tokens == 20
    assert msg.usage.cache_read_input_tokens == 80


def test_stream_events_and_text(client: anthropic.Anthropic, fake: ToolStreamingFake) -> None:
    with client.messages.stream(
        model="small-a", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 10
    assert fake.requests[-1]["stream"] is True

    events = list(
        client.messages.create(
            model="small-a",
            max_tokens=50,
            stream=True,
            messages=[{"role": "user", "content": "Hi"}],
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_raw_stream_has_ping_and_event_names(gateway: Gateway, fake: ToolStreamingFake) -> None:
    body = {
        "model": "small-a",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=body,
        headers={"x-api-key": gateway.keys["alpha"]},
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("event: ")]
    assert lines[:2] == ["event: message_start", "event: ping"]
    assert lines[-1] == "event: message_stop"


def test_tool_use_round_trip(client: anthropic.Anthropic, fake: ToolStreamingFake) -> None:
    first = client.messages.create(
        model="small-a",
        max_tokens=50,
        tools=TOOLS,
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Look up x"}],
    )
    sent = fake.requests[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a thing up",
                "parameters": TOOLS[0]["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == "required"
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use" and use.name == "lookup" and use.input == {"x": 1}

    client.messages.create(
        model="small-a",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Look up x"},
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "42"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
    )
    history = fake.requests[-1]["messages"]
    assert history[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"x":1}'},
            }
        ],
    }
    assert history[2] == {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    assert history[3] == {"role": "user", "content": "Thanks"}


def test_tool_use_stream(client: anthropic.Anthropic, fake: ToolStreamingFake) -> None:
    events = list(
        client.messages.create(
            model="small-a",
            max_tokens=50,
            tools=TOOLS,
            stream=True,
            messages=[{"role": "user", "content": "Look up x"}],
        )
    )
    partial = [
        e.delta.partial_json
        for e in events  # type: ignore[union-attr]
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert "".join(partial) == '{"x": 1}'
    with client.messages.stream(
        model="small-a",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Look up x"}],
    ) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"x": 1}


def test_count_tokens_calls_no_upstream(
    client: anthropic.Anthropic, fake: ToolStreamingFake
) -> None:
    short = client.messages.count_tokens(
        model="small-a", messages=[{"role": "user", "content": "Hi"}]
    )
    longer = client.messages.count_tokens(
        model="small-a",
        system="You are a careful assistant.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "Hi there, how are you today?"}],
    )
    assert 0 < short.input_tokens < longer.input_tokens
    assert fake.requests == []


def test_x_api_key_and_bearer_auth(gateway: Gateway, fake: ToolStreamingFake) -> None:
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="sk-not-a-frugal-key", max_retries=0)
    with bad, pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(
            model="small-a", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert e.value.status_code == 401
    assert e.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid API key."},
    }
    body = {"model": "small-a", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    ok = httpx.post(
        f"{gateway.url}/v1/messages",
        json=body,
        headers={"Authorization": f"Bearer {gateway.keys['alpha']}"},
    )
    assert ok.status_code == 200 and ok.json()["type"] == "message"


def test_errors_in_anthropic_shape(client: anthropic.Anthropic, gateway: Gateway) -> None:
    no_max = {"model": "small-a", "messages": [{"role": "user", "content": "Hi"}]}
    r = httpx.post(
        f"{gateway.url}/v1/messages", json=no_max, headers={"x-api-key": gateway.keys["alpha"]}
    )
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(
            model="small-a",
            max_tokens=5,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "Hi"}],
        )
    assert "server tool" in e.value.message
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_model_auto_routes_with_headers(
    client: anthropic.Anthropic, fake: ToolStreamingFake
) -> None:
    raw = client.messages.with_raw_response.create(
        model="auto", max_tokens=20, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert raw.headers["x-frugal-route"] == "auto"
    assert raw.headers["x-frugal-tier"] in ("small", "large")
    assert "x-frugal-route-score" in raw.headers and raw.headers["x-frugal-route-reason"]
    assert raw.parse().content[0].text == TEXT  # type: ignore[union-attr]
    with client.messages.with_streaming_response.create(
        model="auto",
        max_tokens=20,
        stream=True,
        messages=[{"role": "user", "content": "Say hello"}],
    ) as streamed:
        assert streamed.headers["x-frugal-route"] == "auto"
        assert streamed.headers["x-frugal-model"] in ("small-a", "large-a")


def test_cache_key_includes_the_api(gateway: Gateway, fake: ToolStreamingFake) -> None:
    auth = {"Authorization": f"Bearer {gateway.keys['beta']}"}
    msgs = [{"role": "user", "content": "Cache me please"}]
    anth = {"model": "small-a", "max_tokens": 30, "temperature": 0, "messages": msgs}
    first = httpx.post(f"{gateway.url}/v1/messages", json=anth, headers=auth)
    again = httpx.post(f"{gateway.url}/v1/messages", json=anth, headers=auth)
    assert first.headers["x-frugal-cache"] == "miss" and again.headers["x-frugal-cache"] == "hit"
    assert again.json()["content"] == first.json()["content"]
    # The very same chat request the bridge sent upstream: another API, another cache entry.
    chat = httpx.post(f"{gateway.url}/v1/chat/completions", json=anth, headers=auth)
    assert chat.status_code == 200 and chat.headers["x-frugal-cache"] == "miss"
    assert len(fake.requests) == 2


def test_upstream_failure_mid_stream_ends_with_an_error_event(
    gateway: Gateway, fake: ToolStreamingFake
) -> None:
    fake.script.drop_after_chunks = 4  # the role chunk and three words, then the connection drops
    body = {
        "model": "small-a",
        "max_tokens": 20,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=body,
        headers={"x-api-key": gateway.keys["alpha"]},
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.status_code == 200
    assert lines[-2] == "event: error"
    error = json.loads(lines[-1].removeprefix("data: "))
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "event: message_stop" not in lines
    deltas = [json.loads(x[6:]) for x in lines if x.startswith("data: ") and "text_delta" in x]
    assert "".join(d["delta"]["text"] for d in deltas) == "Frugal routes each"


def test_upstream_reasoning_shows_as_thinking_when_asked(
    client: anthropic.Anthropic, fake: ToolStreamingFake
) -> None:
    fake.reasoning = ["Think", "ing."]
    hi: Any = [{"role": "user", "content": "Hi"}]
    plain = client.messages.create(model="small-a", max_tokens=50, messages=hi)
    assert [b.type for b in plain.content] == ["text"]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(model="small-a", max_tokens=50, messages=hi, thinking=thinking)
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Thinking."  # type: ignore[union-attr]
    assert "thinking" not in fake.requests[-1]  # never sent to a chat upstream
    with client.messages.stream(
        model="small-a", max_tokens=50, messages=hi, thinking=thinking
    ) as s:
        events = list(s)
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Thinking." and final.content[1].text == TEXT  # type: ignore[union-attr]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert deltas[:2] == ["thinking_delta", "thinking_delta"] and set(deltas[2:]) == {"text_delta"}
