"""OpenAI Responses (`POST /v1/responses`) bridged onto chat completions: input items become chat
messages (after the stored conversation of `previous_response_id`), the chat answer a response
object, stored for the team when `store` is on. What a chat upstream cannot honour (built-in
tools, encrypted reasoning, background runs, server-side conversations) is a clear 400."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway import pipeline
from gateway.apis import native, response_store, responses_stream
from gateway.apis.response_output import CUSTOM_INPUT, custom_arguments, from_chat, new_id
from gateway.call import Call
from gateway.errors import InvalidRequest
from gateway.providers.base import Endpoint
from gateway.runtime import Runtime
from gateway.schemas import ChatRequest, validate
from gateway.streaming import StreamReply

_COMPLETED = b"event: response.completed\n"


class ResponsesRequest(BaseModel):
    """What /v1/responses takes (fields the bridge does not use are accepted and ignored)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float | int, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float | int, Field(ge=0, le=1)] | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool = True
    previous_response_id: str | None = None
    stream: bool = False
    user: str | None = None
    background: bool | None = None
    conversation: Any = None


async def serve(rt: Runtime, call: Call) -> pipeline.Reply | StreamReply:
    req = validate(ResponsesRequest, call.body)
    _refuse_unbridgeable(req)
    team = call.principal.team
    history: list[dict[str, Any]] = []
    holder = None  # the model whose upstream holds the previous response's state
    if req.previous_response_id is not None:
        entry = await response_store.previous(rt.store, team, req.previous_response_id)
        history, holder = entry["conversation"], entry.get("native")
    try:
        turn = input_messages(req.input)
        chat = to_chat(req, [*history, *turn])
    except InvalidRequest as refused:  # only a model that speaks Responses can take it
        if history:
            raise
        turn, chat = _native_only(rt, call, req, refused)
    if holder is not None:
        chat["model"] = holder  # the conversation stays on the model that holds its state
        reason = f"previous_response_id: its state is held by {holder}"
        call.extra_headers["x-frugal-route-reason"] = reason
    if not history:  # a bridged conversation goes on bridged: no upstream has its state
        call.native = call.body
    call.api, call.endpoint, call.body = Endpoint.responses, Endpoint.chat, chat
    reply = await native.generate(rt, call, validate(ChatRequest, chat))
    if native.speaks(rt, call, call.model or ""):
        return await _passed(rt, call, req, reply)
    shell = response_shell(req, new_id("resp"), call.model or req.model)

    async def keep(response: dict[str, Any], answer: list[dict[str, Any]]) -> None:
        if req.store:
            await response_store.save(rt.store, team, response, [*history, *turn, *answer])

    if isinstance(reply, StreamReply):
        return StreamReply(responses_stream.render(reply.chunks, shell, keep), reply.headers)
    response, answer = from_chat(reply.body, shell)
    await keep(response, answer)
    return pipeline.Reply(response, reply.headers)


_ITEMS = frozenset({"message", "function_call", "custom_tool_call", "function_call_output",
                    "custom_tool_call_output"})  # fmt: skip
_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})


def _native_only(
    rt: Runtime, call: Call, req: ResponsesRequest, refused: InvalidRequest
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A request the bridge cannot translate (built-in tools, encrypted reasoning, file
    inputs): routed only to models that speak Responses natively, with the translatable part
    standing in for routing, estimates and the budget hold; else the bridge's refusal."""
    native.only(rt, call, req.model, refused)
    lenient = validate(ResponsesRequest, bridgeable(call.body))
    try:
        turn = input_messages(lenient.input)
        return turn, to_chat(lenient, turn)
    except InvalidRequest:
        raise refused from None


def bridgeable(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Responses request without what the bridge cannot translate."""
    out = dict(body)
    if isinstance(body.get("input"), list):
        kept = []
        for item in body["input"]:
            kind = item.get("type") or ("message" if "role" in item else None)
            if kind not in _ITEMS:
                continue
            if kind == "message" and isinstance(item.get("content"), list):
                parts = [p for p in item["content"] if isinstance(p, dict) and (
                    p.get("type") in _PARTS or (p.get("type") == "input_image"
                                                and p.get("image_url")))]  # fmt: skip
                item = {**item, "content": parts}
            kept.append(item)
        out["input"] = kept
    if isinstance(body.get("tools"), list):
        out["tools"] = [t for t in body["tools"] if t.get("type") in ("function", "custom")]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", "custom"):
        del out["tool_choice"]
    return out


async def _passed(
    rt: Runtime, call: Call, req: ResponsesRequest, reply: pipeline.Reply | StreamReply
) -> pipeline.Reply | StreamReply:
    """A response passed through from a native upstream, kept (when `store`) as held there:
    continuing it stays on the model that answered."""
    team, model = call.principal.team, call.model

    async def keep(response: Any) -> None:
        if req.store and isinstance(response, dict) and isinstance(response.get("id"), str):
            await response_store.save(rt.store, team, response, [], native=model)

    if isinstance(reply, StreamReply):
        return StreamReply(_kept(reply.chunks, keep), reply.headers)
    await keep(reply.body)
    return reply


async def _kept(
    events: AsyncIterator[bytes], keep: Callable[[Any], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """The events as they are; the completed response kept before its event goes out (each
    piece is one whole event, gateway/apis/native.py)."""
    try:
        async for event in events:
            if event.startswith(_COMPLETED):
                data = event.split(b"\ndata: ", 1)[1]
                await keep(orjson.loads(data).get("response"))
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()  # the relay settles in its `finally`


def _refuse_unbridgeable(req: ResponsesRequest) -> None:
    if req.background:
        raise InvalidRequest("Background responses are not supported by this gateway.",
                             param="background")  # fmt: skip
    if req.conversation is not None:
        raise InvalidRequest("The Conversations API is not supported by this gateway: use "
                             "previous_response_id, or send the whole history.",
                             param="conversation")  # fmt: skip


# --- request: Responses -> chat ------------------------------------------------------------


def to_chat(req: ResponsesRequest, conversation: list[dict[str, Any]]) -> dict[str, Any]:
    messages = list(conversation)
    if req.instructions:  # never carried over from a previous response
        messages.insert(0, {"role": "system", "content": req.instructions})
    if not messages:
        raise InvalidRequest("The input is empty.", param="input")
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
    elif "parallel_tool_calls" in body:
        del body["parallel_tool_calls"]  # chat refuses it without tools
    if req.tool_choice is not None:
        body["tool_choice"] = _tool_choice(req.tool_choice)
    fmt = (req.text or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object"):
        body["response_format"] = _response_format(fmt)
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # response.completed carries usage
    return body


def input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item))
        elif kind in ("function_call", "custom_tool_call"):
            _add_call(out, item)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output or [])
            out.append({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": text})
        elif kind == "reasoning":
            if item.get("encrypted_content"):
                raise InvalidRequest(
                    "Encrypted reasoning items can only be read by the upstream that made them; "
                    "this model is served through a chat-completions bridge. Drop them, or leave "
                    "'reasoning.encrypted_content' out of `include`.", param="input",
                )  # fmt: skip
        else:
            raise InvalidRequest(f"Input items of type {kind!r} cannot be served by this "
                                 "gateway's bridge to chat-completions models.",
                                 param="input")  # fmt: skip
    return out


def _add_call(out: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """A (custom) function call item, added to the assistant turn it belongs to."""
    if item.get("type") == "custom_tool_call":
        args = custom_arguments(item.get("input"))
    else:
        args = str(item.get("arguments") or "{}")
    call = {"id": str(item.get("call_id")), "type": "function",
            "function": {"name": str(item.get("name")), "arguments": args}}  # fmt: skip
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)  # one assistant turn
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _message(item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InvalidRequest(f"Unknown message role {role!r}.", param="input")
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [_part(p) for p in content or ()]
    if role != "user" or (len(parts) == 1 and parts[0]["type"] == "text"):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}  # several parts stay apart, as chat allows


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image" and part.get("image_url"):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise InvalidRequest(f"Content parts of type {kind!r} (or images by file_id) cannot be "
                         "served by this gateway's bridge.", param="input")  # fmt: skip


def _text(parts: list[Any]) -> str:
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "custom":  # freeform input: a function taking one string
        fn = {"name": tool.get("name"), "parameters": CUSTOM_INPUT}
        if tool.get("description"):
            fn["description"] = tool["description"]
        return {"type": "function", "function": fn}
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"The built-in tool {tool.get('type')!r} cannot be run by a model served through "
            "this gateway's chat-completions bridge; only function tools can.", param="tools",
        )  # fmt: skip
    fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": fn}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") in ("function", "custom"):
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise InvalidRequest(f"tool_choice of type {choice.get('type')!r} is not supported by "
                         "this gateway's bridge.", param="tool_choice")  # fmt: skip


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


def response_shell(req: ResponsesRequest, response_id: str, model: str) -> dict[str, Any]:
    """The response object before any output: what the request asked for, echoed back."""
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()),
        "status": "in_progress", "error": None, "incomplete_details": None,
        "instructions": req.instructions, "max_output_tokens": req.max_output_tokens,
        "model": model, "output": [],
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": None, "summary": None}, "store": req.store,
        "temperature": req.temperature, "top_p": req.top_p,
        "text": req.text or {"format": {"type": "text"}},
        "tool_choice": req.tool_choice or "auto", "tools": req.tools or [],
        "truncation": "disabled", "usage": None, "user": req.user, "metadata": req.metadata or {},
    }  # fmt: skip
