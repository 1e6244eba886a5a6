"""Gateways for the client-API tests: the official `openai` and `anthropic` clients against
the gateway, bridged onto the fake OpenAI-compatible upstream (real chat wire format). The fake
here also streams tool calls, as OpenAI does (id and name first, then argument fragments)."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway.keys import create_key
from tests.support.fake_openai import WORDS, FakeOpenAI
from tests.support.servers import GatewayServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

ARGS = ['{"x"', ": 1}"]  # the streamed tool call's argument fragments


class ToolStreamingFake(FakeOpenAI):
    args: list[str] = ARGS  # the argument fragments a streamed tool call sends
    reasoning: list[str] = []  # reasoning_content fragments sent before the answer  # noqa: RUF012

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self.reasoning:
            return await super()._chat(request)
        body = await request.json()
        self.requests.append(body)
        if body.get("stream"):
            return await self._stream(request, body, 7, chat=True)
        message = {
            "role": "assistant",
            "content": "".join(WORDS),
            "reasoning_content": "".join(self.reasoning),
        }
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "usage": self._usage(7, len(WORDS)),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], prompt: int, chat: bool
    ) -> web.StreamResponse:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
        if chat and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            first = {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            deltas[0]["tool_calls"] = [first]
            deltas += [
                {"tool_calls": [{"index": 0, "function": {"arguments": a}}]} for a in self.args
            ]
            finish = "tool_calls"
        elif chat and self.reasoning:
            deltas += [{"reasoning_content": r} for r in self.reasoning]
            deltas += [{"content": w} for w in WORDS]
            finish = "stop"
        else:
            return await super()._stream(request, body, prompt, chat)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        base = {
            "id": "chatcmpl-fake",
            "created": int(time.time()),
            "model": body["model"],
            "object": "chat.completion.chunk",
        }
        chunks = [
            {**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": self._usage(prompt, 5)})
        for c in chunks:
            await resp.write(b"data: " + orjson.dumps(c) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


@pytest.fixture(scope="session")
def tool_fake() -> Iterator[ToolStreamingFake]:
    fake = ToolStreamingFake(api_key="sk-upstream-secret-123").start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(tool_fake: ToolStreamingFake) -> Iterator[ToolStreamingFake]:
    tool_fake.reset()
    yield tool_fake
    tool_fake.reset()
    tool_fake.args = ARGS
    tool_fake.reasoning = []


@dataclass
class Gateway:
    url: str
    keys: dict[str, str]  # team -> Frugal API key


@pytest.fixture(scope="module")
def gateway(
    tool_fake: ToolStreamingFake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, tool_fake.api_key or "")
    folder = tmp_path_factory.mktemp("policies")
    keys = {team: create_key(folder, team) for team in ("alpha", "beta")}
    cache = {"enabled": True, "timeout_ms": 1000}
    try:
        with GatewayServer(settings_for(tool_fake.url, folder, cache=cache)) as gw:
            yield Gateway(gw.url, keys)
    finally:
        mp.undo()
