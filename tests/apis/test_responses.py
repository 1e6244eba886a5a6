"""/v1/responses through the official `openai` client, bridged onto the fake OpenAI-compatible
upstream: the chat request the upstream receives, the response object, the event stream, tools
both ways, usage details, refusals of what a bridge cannot honour, and routing."""

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.apis.conftest import Gateway, ToolStreamingFake

TEXT = "Frugal routes each prompt to the cheapest good model."
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a thing up",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
    }
]


@pytest.fixture
def client(gateway: Gateway, fake: ToolStreamingFake) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=gateway.keys["alpha"], max_retries=0
    ) as client:  # closed: no socket left to the garbage collector
        yield client


def test_create_translates_request_and_answer(
    client: openai.OpenAI, fake: ToolStreamingFake
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    raw = client.responses.with_raw_response.create(
        model="small-a",
        instructions="Be brief.",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AAAA",
                        "detail": "low",
                    },
                ],
            }
        ],
        max_output_tokens=40,
        temperature=0.2,
        text={
            "format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}
        },
        metadata={"ticket": "T-1"},
        store=False,
    )
    resp = raw.parse()
    sent = fake.requests[-1]
    assert sent["model"] == "fake-small"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
            ],
        },
    ]
    assert (sent["max_tokens"], sent["temperature"]) == (40, 0.2)
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert resp.object == "response" and resp.status == "completed"
    assert resp.id.startswith("resp_")
    assert resp.output_text == TEXT
    assert resp.output[0].type == "message"
    assert resp.metadata == {"ticket": "T-1"}
    assert resp.usage is not None and resp.usage.output_tokens == 10
    assert resp.usage.total_tokens == resp.usage.input_tokens + 10
    assert raw.headers["x-frugal-model"] == "small-a"


def test_string_input_and_usage_details(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    fake.script.usage_extra = {
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    resp = client.responses.create(model="small-a", input="Say hello", store=False)
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Say hello"}]
    assert resp.usage is not None
    assert resp.usage.input_tokens_details.cached_tokens == 4
    assert resp.usage.output_tokens_details.reasoning_tokens == 3


def test_stream_event_sequence(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    fake.script.usage_extra = {"prompt_tokens_details": {"cached_tokens": 2}}
    events = list(client.responses.create(model="small-a", input="Hi", stream=True, store=False))
    kinds = [e.type for e in events]
    head = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    tail = [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds[:4] == head and kinds[-4:] == tail
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == TEXT
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == TEXT
    assert done.response.usage is not None and done.response.usage.output_tokens == 10
    assert done.response.usage.input_tokens_details.cached_tokens == 2
    with client.responses.stream(model="small-a", input="Hi", store=False) as stream:
        final = stream.get_final_response()
    assert final.output_text == TEXT


def test_tools_round_trip(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    first = client.responses.create(
        model="small-a", input="Look up x", tools=TOOLS, tool_choice="required", store=False
    )
    sent = fake.requests[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {k: TOOLS[0][k] for k in ("name", "description", "parameters")},
        }
    ]
    assert sent["tool_choice"] == "required"
    call = first.output[0]
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.arguments) == ("lookup", "call_1", '{"x": 1}')

    client.responses.create(
        model="small-a",
        tools=TOOLS,
        store=False,
        input=[
            {"role": "user", "content": "Look up x"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
        ],
    )
    assert fake.requests[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"x": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]


def test_tool_call_stream(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    events = list(
        client.responses.create(
            model="small-a", input="Look up x", tools=TOOLS, stream=True, store=False
        )
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[5].arguments == '{"x": 1}'  # type: ignore[union-attr]
    item = events[-1].response.output[0]  # type: ignore[union-attr]
    assert item.type == "function_call" and item.call_id == "call_1" and item.name == "lookup"


def test_previous_response_id_continues_the_conversation(
    client: openai.OpenAI, fake: ToolStreamingFake, gateway: Gateway,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    first = client.responses.create(
        model="small-a", instructions="Be brief.", input="Look up x", tools=TOOLS
    )
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model="small-a",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "42"}],
    )
    # Instructions are not carried over; the stored turns are.
    assert fake.requests[-1]["messages"] == [
        {"role": "user", "content": "Look up x"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"x": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    assert second.previous_response_id == first.id and second.output_text == TEXT
    # The stored response is found by its team, and only by it.
    assert client.responses.retrieve(second.id).output_text == TEXT
    other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.keys["beta"], max_retries=0)
    request.addfinalizer(other.close)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(second.id)
    with pytest.raises(openai.BadRequestError) as e:
        other.responses.create(model="small-a", previous_response_id=second.id, input="More")
    assert e.value.code == "previous_response_not_found"
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_store_false_keeps_nothing(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    resp = client.responses.create(model="small-a", input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_stream_is_stored_before_it_completes(
    client: openai.OpenAI, fake: ToolStreamingFake
) -> None:
    events = list(client.responses.create(model="small-a", input="Hi", stream=True))
    done = events[-1]
    assert done.type == "response.completed"
    stored = client.responses.retrieve(done.response.id)
    assert stored.output_text == TEXT and stored.status == "completed"


@pytest.mark.parametrize(
    ("extra", "needle", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "built-in tool 'web_search'", "tools"),
        (
            {
                "input": [
                    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"}
                ]
            },
            "Encrypted reasoning",
            "input",
        ),
        ({"background": True}, "Background", "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference", "input"),
    ],
)
def test_what_a_bridge_cannot_honour_is_a_clear_400(
    gateway: Gateway, fake: ToolStreamingFake, extra: dict[str, Any], needle: str, param: str
) -> None:
    body = {"model": "small-a", "input": "Hi", **extra}
    r = httpx.post(
        f"{gateway.url}/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {gateway.keys['alpha']}"},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert needle in err["message"] and err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert fake.requests == []


def test_model_auto_routes_with_headers(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    raw = client.responses.with_raw_response.create(model="auto", input="Say hello", store=False)
    assert raw.headers["x-frugal-route"] == "auto"
    assert raw.headers["x-frugal-tier"] in ("small", "large")
    assert "x-frugal-route-score" in raw.headers and raw.headers["x-frugal-route-reason"]
    assert raw.parse().output_text == TEXT
    with client.responses.with_streaming_response.create(
        model="auto", input="Say hello", stream=True, store=False
    ) as streamed:
        assert streamed.headers["x-frugal-route"] == "auto"
        assert streamed.headers["x-frugal-model"] in ("small-a", "large-a")


def test_upstream_failure_mid_stream_is_a_failed_response(
    client: openai.OpenAI, fake: ToolStreamingFake
) -> None:
    fake.script.drop_after_chunks = 3
    events = list(client.responses.create(model="small-a", input="Hi", stream=True))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed" and last.response.error is not None
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert (
        "".join(e.delta for e in events if e.type == "response.output_text.delta")
        == "Frugal routes"
    )


def test_several_text_parts_stay_apart(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    parts: Any = [
        {"type": "input_text", "text": "<context>"},
        {"type": "input_text", "text": "Do it"},
    ]
    client.responses.create(
        model="small-a", input=[{"role": "user", "content": parts}], store=False
    )
    assert fake.requests[-1]["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "<context>"}, {"type": "text", "text": "Do it"}],
        }
    ]


PATCH_TOOL: Any = {"type": "custom", "name": "apply_patch", "description": "Apply a patch"}


def test_custom_tool_round_trip(client: openai.OpenAI, fake: ToolStreamingFake) -> None:
    fake.args = ['{"input": "*** Begin', ' Patch"}']
    events = list(
        client.responses.create(model="small-a", input="Fix it", tools=[PATCH_TOOL], stream=True)
    )
    sent = fake.requests[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "apply_patch",
                "description": "Apply a patch",
                "parameters": {
                    "type": "object",
                    "properties": {"input": {"type": "string"}},
                    "required": ["input"],
                    "additionalProperties": False,
                },
            },
        }
    ]
    kinds = [e.type for e in events]
    assert kinds[2:-1] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
    ]
    item = events[-1].response.output[0]  # type: ignore[union-attr]
    assert item.type == "custom_tool_call" and item.input == "*** Begin Patch"
    # The call and its output go back as the custom items Codex sends; the bridge keeps them.
    client.responses.create(
        model="small-a",
        previous_response_id=events[-1].response.id,  # type: ignore[union-attr]
        input=[{"type": "custom_tool_call_output", "call_id": item.call_id, "output": "Done"}],
        store=False,
    )
    assert fake.requests[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Done"},
    ]
    # A whole (non-streamed) answer names the custom tool too.
    resp = client.responses.create(model="small-a", input="Fix it", tools=[PATCH_TOOL], store=False)
    assert resp.output[0].type == "custom_tool_call" and resp.output[0].name == "apply_patch"


def test_upstream_reasoning_is_a_reasoning_item(
    client: openai.OpenAI, fake: ToolStreamingFake
) -> None:
    fake.reasoning = ["Think", "ing."]
    resp = client.responses.create(model="small-a", input="Hi", store=False)
    assert [i.type for i in resp.output] == ["reasoning", "message"]
    assert resp.output[0].content[0].text == "Thinking."  # type: ignore[union-attr, index]
    assert resp.output_text == TEXT
    events = list(client.responses.create(model="small-a", input="Hi", stream=True, store=False))
    kinds = [e.type for e in events]
    assert kinds[2:7] == [
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
    ]
    assert kinds[7] == "response.output_item.added" and kinds[-1] == "response.completed"
    final = events[-1].response  # type: ignore[union-attr]
    assert [i.type for i in final.output] == ["reasoning", "message"]
    assert final.output_text == TEXT
