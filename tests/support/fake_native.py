"""A fake of upstreams that speak the client APIs natively, on top of the OpenAI-compatible fake
(chat completions still work): OpenAI's Responses API (`POST /v1/responses`, whole or streamed,
keeping the ids it made so `previous_response_id` works only on this upstream) and Anthropic's
Messages API (`POST /v1/messages` with `x-api-key`, whole or streamed with `ping`). Each stream
carries one event type no client knows, to check that it passes through unchanged. Every
request's path, body and headers are recorded."""

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.fake_openai import WORDS, FakeOpenAI

TEXT = "".join(WORDS)
UNKNOWN_RESPONSES_EVENT = "response.frugal_test.unknown"
UNKNOWN_MESSAGES_EVENT = "frugal_test_unknown"
# What the fake reports: Responses (cached and reasoning are subsets), Messages (cache reads
# are in addition to input_tokens).
RESPONSES_USAGE = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4},
                   "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 2},
                   "total_tokens": 21}  # fmt: skip
COUNTED = 4242  # what count_tokens answers
MESSAGES_USAGE = {"input_tokens": 11, "cache_read_input_tokens": 5,
                  "cache_creation_input_tokens": 0, "output_tokens": 9}  # fmt: skip


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeNative(FakeOpenAI):
    seen: list[Seen] = field(default_factory=list)
    made: set[str] = field(default_factory=set)  # response ids this upstream holds

    def reset(self) -> None:
        super().reset()
        self.seen.clear()

    def _app(self) -> web.Application:
        app = super()._app()
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count)
        return app

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.seen.append(Seen(request.path, body, dict(request.headers)))
        return body

    # --- OpenAI Responses ----------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _openai_error(401, "Incorrect API key provided", "invalid_api_key")
        body = await self._record(request)
        prev = body.get("previous_response_id")
        if prev is not None and prev not in self.made:
            return _openai_error(400, f"Previous response with id '{prev}' not found.",
                                 "previous_response_not_found")  # fmt: skip
        rid = f"resp_fake_{len(self.made) + 1}"
        self.made.add(rid)
        msg = {"type": "message", "id": f"msg_{rid}", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}  # fmt: skip
        output: list[dict[str, Any]] = [msg]
        if _wants_tool(body.get("tools"), body.get("input"), "function_call_output"):
            output = [{"type": "function_call", "id": f"fc_{rid}", "call_id": "call_1",
                       "name": body["tools"][0]["name"], "arguments": '{"x": 1}',
                       "status": "completed"}]  # fmt: skip
        response = {
            "id": rid, "object": "response", "created_at": int(time.time()),
            "status": "completed", "model": body.get("model"), "output": output,
            "previous_response_id": prev, "parallel_tool_calls": True, "tool_choice": "auto",
            "tools": [], "usage": RESPONSES_USAGE, "error": None, "incomplete_details": None,
        }  # fmt: skip
        if not body.get("stream"):
            return web.json_response(response)
        start = {**response, "status": "in_progress", "output": [], "usage": None}
        part = {"type": "output_text", "text": "", "annotations": []}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": start},
            {"type": "response.in_progress", "response": start},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {**msg, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", "item_id": msg["id"], "output_index": 0,
             "content_index": 0, "part": part},
            *({"type": "response.output_text.delta", "item_id": msg["id"], "output_index": 0,
               "content_index": 0, "delta": w} for w in WORDS),
            {"type": UNKNOWN_RESPONSES_EVENT, "note": "for clients that know it"},
            {"type": "response.output_text.done", "item_id": msg["id"], "output_index": 0,
             "content_index": 0, "text": TEXT},
            {"type": "response.content_part.done", "item_id": msg["id"], "output_index": 0,
             "content_index": 0, "part": {**part, "text": TEXT}},
            {"type": "response.output_item.done", "output_index": 0, "item": msg},
            {"type": "response.completed", "response": response},
        ]  # fmt: skip
        for n, e in enumerate(events):
            e["sequence_number"] = n
        return await _sse(request, events)

    # --- Anthropic Messages --------------------------------------------------------------

    async def _count(self, request: web.Request) -> web.Response:
        if self.api_key and request.headers.get("x-api-key") != self.api_key:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        await self._record(request)
        return await _count_reply(COUNTED)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("x-api-key") != self.api_key:
            return _anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return _anthropic_error(400, "invalid_request_error", "anthropic-version missing")
        body = await self._record(request)
        message = {
            "id": "msg_fake_1", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": MESSAGES_USAGE,
        }  # fmt: skip
        last = (body.get("messages") or [{}])[-1].get("content")
        if _wants_tool(body.get("tools"), last, "tool_result"):
            message["content"] = [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": body["tools"][0]["name"],
                    "input": {"x": 1},
                }
            ]
            message["stop_reason"] = "tool_use"  # fmt: skip
        if not body.get("stream"):
            return web.json_response(message)
        start_usage = {**MESSAGES_USAGE, "output_tokens": 1}
        events: list[dict[str, Any]] = [
            {"type": "message_start",
             "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}},
            {"type": "ping"},
            {"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}},
            *({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": w}} for w in WORDS),
            {"type": UNKNOWN_MESSAGES_EVENT, "note": "for clients that know it"},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": MESSAGES_USAGE["output_tokens"]}},
            {"type": "message_stop"},
        ]  # fmt: skip
        return await _sse(request, events)


def _wants_tool(tools: Any, last: Any, result: str) -> bool:
    """Call the first (client) tool, unless the input already ends with a tool's result."""
    if not tools or tools[0].get("type") not in (None, "function", "custom"):
        return False
    items = last if isinstance(last, list) else []
    return not any(isinstance(i, dict) and i.get("type") == result for i in items)


async def _count_reply(n: int) -> web.Response:
    return web.json_response({"input_tokens": n})


async def _sse(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for e in events:
        await resp.write(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n")
    await resp.write_eof()
    return resp


def _openai_error(status: int, message: str, code: str) -> web.Response:
    err = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return web.json_response({"error": err}, status=status)


def _anthropic_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(
        {"type": "error", "error": {"type": kind, "message": message}}, status=status
    )
