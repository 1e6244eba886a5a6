"""Streams: a streamed miss is stored once complete; a streaming request that hits gets a
proper SSE stream (role chunk, content chunks, finish_reason, usage chunk if asked, [DONE]);
streamed and non-streamed requests share entries."""

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.cache.conftest import Gateway, cache_gateway
from tests.support.fake_openai import FakeOpenAI

TEXT = "Frugal routes each prompt to the cheapest good model."


@pytest.fixture(scope="module")
def gw(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), {}) as g:
        yield g


def sse(
    gw: Gateway, text: str, include_usage: bool | None = None
) -> tuple[dict[str, str], list[Any]]:
    body: dict[str, Any] = {"model": "small-a", "messages": [{"role": "user", "content": text}],
                            "temperature": 0, "stream": True}  # fmt: skip
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, headers=gw.auth(),
                      timeout=10) as r:  # fmt: skip
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in r.iter_lines() if line]
        return dict(r.headers), [e if e == "[DONE]" else orjson.loads(e) for e in events]


def check_replay(events: list[Any], include_usage: bool) -> None:
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "small-a" for c in chunks)
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) > 1, "content is replayed in several chunks, not as one lump"
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == TEXT
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    usage = [c for c in chunks if c.get("usage")]
    if include_usage:
        assert chunks[-1] is usage[0] and chunks[-1]["choices"] == []
        assert usage[0]["usage"]["completion_tokens"] == 10
        assert usage[0]["x_frugal"]["cost_usd"] == "0"
    else:
        assert not usage and all(c["choices"] for c in chunks)


@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_miss_is_stored_and_replayed_as_sse(
    gw: Gateway, upstream: FakeOpenAI, include_usage: bool
) -> None:
    text = f"stream me {include_usage}"
    h, _ = sse(gw, text, include_usage)
    assert h["x-frugal-cache"] == "miss"
    h, again = sse(gw, text, include_usage)
    assert h["x-frugal-cache"] == "hit" and h["x-frugal-cost-usd"] == "0"
    assert len(upstream.requests) == 1
    check_replay(again, include_usage)


def test_streamed_and_plain_requests_share_entries(gw: Gateway, upstream: FakeOpenAI) -> None:
    sse(gw, "shared entry", True)
    r = gw.client().chat.completions.with_raw_response.create(
        model="small-a", messages=[{"role": "user", "content": "shared entry"}], temperature=0
    )
    assert r.headers["x-frugal-cache"] == "hit"
    assert r.parse().choices[0].message.content == TEXT
    assert r.parse().choices[0].finish_reason == "stop"
    # And the other way round: a plain miss answers a streaming request.
    gw.client().chat.completions.create(
        model="small-a", messages=[{"role": "user", "content": "plain first"}], temperature=0
    )
    h, events = sse(gw, "plain first", True)
    assert h["x-frugal-cache"] == "hit"
    check_replay(events, True)
    assert len(upstream.requests) == 2


def test_official_client_reads_a_replayed_stream(gw: Gateway, upstream: FakeOpenAI) -> None:
    for _ in range(2):
        stream = gw.client().chat.completions.create(
            model="small-a", messages=[{"role": "user", "content": "client"}], temperature=0,
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
        assert chunks[-1].usage is not None
    assert len(upstream.requests) == 1


def test_streamed_tool_calls_are_reassembled(gw: Gateway, upstream: FakeOpenAI) -> None:
    # The fake streams text only; tool calls come from a plain response and replay as a stream.
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    msgs = [{"role": "user", "content": "tool stream"}]
    gw.client().chat.completions.create(model="small-a", messages=msgs, tools=tools,  # type: ignore[arg-type]
                                        temperature=0)  # fmt: skip
    chunks = list(gw.client().chat.completions.create(
        model="small-a", messages=msgs, tools=tools, temperature=0, stream=True))  # type: ignore[arg-type]  # fmt: skip
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function is not None and calls[0].function.name == "lookup"
    assert calls[0].function.arguments == '{"x": 1}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len(upstream.requests) == 1
