"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`) bridged onto chat
completions: the request becomes a chat request for the one pipeline, the chat answer a
message. What a chat upstream cannot do (server tools, documents) is a clear 400; `thinking`
and earlier thinking blocks are dropped (a chat upstream cannot check their signatures)."""

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gateway import pipeline, tokens
from gateway.apis import messages_stream, native, usage
from gateway.call import Call
from gateway.errors import InvalidRequest
from gateway.providers.base import Endpoint
from gateway.runtime import Runtime
from gateway.schemas import ChatRequest, validate
from gateway.streaming import StreamReply

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}  # fmt: skip


class Turn(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(BaseModel):
    """What /v1/messages takes (fields the bridge does not use are accepted and ignored)."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(min_length=1)
    messages: list[Turn] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)]
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: Annotated[float | int, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float | int, Field(ge=0, le=1)] | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None  # not sent upstream; shows the upstream's reasoning


class CountRequest(MessagesRequest):
    max_tokens: Annotated[int, Field(ge=1)] | None = None  # type: ignore[assignment]


async def serve(rt: Runtime, call: Call) -> pipeline.Reply | StreamReply:
    req = validate(MessagesRequest, call.body)
    try:
        chat = to_chat(req)
    except InvalidRequest as refused:  # only a model that speaks Messages can take it
        native.only(rt, call, req.model, refused)
        try:
            chat = to_chat(validate(MessagesRequest, bridgeable(call.body)))
        except InvalidRequest:
            raise refused from None
    call.native = call.body  # passed through to a model that speaks Messages (native.py)
    call.api, call.endpoint, call.body = Endpoint.messages, Endpoint.chat, chat
    reply = await native.generate(rt, call, validate(ChatRequest, chat))
    if native.speaks(rt, call, call.model or ""):
        return reply  # the upstream's own message, or its own events
    thinking = (req.thinking or {}).get("type") in ("enabled", "adaptive")
    msg_id = f"msg_{call.request_id}"
    if isinstance(reply, StreamReply):
        start = tokens.count_messages(chat["messages"])  # message_start's input estimate
        events = messages_stream.render(reply.chunks, msg_id, call.model, start, thinking)
        return StreamReply(events, reply.headers)
    return pipeline.Reply(from_chat(reply.body, msg_id, thinking), reply.headers)


_BLOCKS = frozenset({"text", "tool_use", "tool_result", "thinking", "redacted_thinking"})


def bridgeable(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Messages request without what the bridge cannot translate (server tools,
    documents, other block types), standing in for routing, estimates and the budget hold
    of a request only a model that speaks Messages can take."""
    out = dict(body)
    turns = []
    for turn in body.get("messages") or ():
        content = turn.get("content") if isinstance(turn, dict) else None
        if isinstance(content, list):
            content = [b for b in content if isinstance(b, dict) and (
                b.get("type") in _BLOCKS or (b.get("type") == "image" and (
                    b.get("source") or {}).get("type") in ("base64", "url")))]  # fmt: skip
            turn = {**turn, "content": content}
        turns.append(turn)
    out["messages"] = turns
    if isinstance(body.get("tools"), list):
        out["tools"] = [t for t in body["tools"] if t.get("type") in (None, "custom")]
    return out


async def count(rt: Runtime, call: Call) -> pipeline.Reply:
    """`/v1/messages/count_tokens`: asked of the upstream when the model named speaks Messages
    natively (Anthropic's count is exact and free); else counted locally (o200k, an estimate)."""
    req = validate(CountRequest, call.body)
    cfg = rt.settings.models.get(req.model)
    if cfg is not None and "messages" in cfg.apis and req.model not in rt.router.unavailable:
        body = {**call.body, "model": cfg.model}
        _, counted = await rt.resilient.call(
            [req.model], lambda m: rt.providers[m].complete(Endpoint.count_tokens, body),
            call.attempts, call.request_id,
        )  # fmt: skip
        headers = {"x-request-id": call.request_id, "x-frugal-model": req.model}
        return pipeline.Reply(counted.body, headers)
    chat = to_chat(req)
    n = tokens.count_messages(chat["messages"])
    for tool in chat.get("tools") or ():
        n += tokens.count_text(orjson.dumps(tool["function"]).decode())
    return pipeline.Reply({"input_tokens": n}, {"x-request-id": call.request_id})


# --- request: Messages -> chat -------------------------------------------------------------


def to_chat(req: MessagesRequest) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": _system(req.system)})
    for turn in req.messages:
        messages += _turn(turn)
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    for name in ("temperature", "top_p"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if req.stop_sequences:
        body["stop"] = req.stop_sequences
    if req.tools:
        body["tools"] = [_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        _tool_choice(req.tool_choice, body)
    fmt = (req.output_config or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": "output", "schema": fmt.get("schema") or {}, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    user = (req.metadata or {}).get("user_id")
    if isinstance(user, str):
        body["user"] = user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # message_delta carries the usage
    return body


def _system(system: str | list[dict[str, Any]]) -> str:
    if isinstance(system, str):
        return system
    return "\n\n".join(str(b.get("text") or "") for b in system if b.get("type") == "text")


def _turn(turn: Turn) -> list[dict[str, Any]]:
    if isinstance(turn.content, str):
        return [{"role": turn.role, "content": turn.content}]
    results: list[dict[str, Any]] = []  # tool messages come first, as chat wants them
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in turn.content:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append(_image(block))
        elif kind == "tool_use" and turn.role == "assistant":
            args = orjson.dumps(block.get("input") or {}).decode()
            fn = {"name": str(block.get("name")), "arguments": args}
            calls.append({"id": str(block.get("id")), "type": "function", "function": fn})
        elif kind == "tool_result" and turn.role == "user":
            text, images = _result(block)
            results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")),
                            "content": text})  # fmt: skip
            parts += images  # a chat tool message holds text only: images follow as user input
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise InvalidRequest(
                f"Content blocks of type {kind!r} cannot be served by this gateway's bridge to "
                "chat-completions models.", param="messages",
            )  # fmt: skip
    if turn.role == "assistant":
        text = "".join(p.get("text", "") for p in parts)
        msg: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            msg["tool_calls"] = calls
        return [*results, msg] if text or calls else results
    if not parts:
        return results
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _image(block: dict[str, Any]) -> dict[str, Any]:
    src = block.get("source") or {}
    if src.get("type") == "base64":
        url = f"data:{src.get('media_type')};base64,{src.get('data')}"
    elif src.get("type") == "url":
        url = str(src.get("url"))
    else:
        raise InvalidRequest(f"Image sources of type {src.get('type')!r} are not supported.",
                             param="messages")  # fmt: skip
    return {"type": "image_url", "image_url": {"url": url}}


def _result(block: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
        return (f"Error: {text}" if block.get("is_error") else text), []
    texts = [str(b.get("text") or "") for b in content if b.get("type") == "text"]
    images = [_image(b) for b in content if b.get("type") == "image"]
    text = "\n".join(texts)
    return (f"Error: {text}" if block.get("is_error") else text), images


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise InvalidRequest(
            f"Tool type {tool.get('type')!r} is an Anthropic server tool: a chat-completions "
            "model cannot run it. Send client tools (name, description, input_schema).",
            param="tools",
        )  # fmt: skip
    fn: dict[str, Any] = {"name": tool.get("name"),
                          "parameters": tool.get("input_schema") or {"type": "object"}}  # fmt: skip
    if tool.get("description"):
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}


def _tool_choice(choice: dict[str, Any], body: dict[str, Any]) -> None:
    kind = choice.get("type")
    if kind == "auto":
        body["tool_choice"] = "auto"
    elif kind == "any":
        body["tool_choice"] = "required"
    elif kind == "none":
        body["tool_choice"] = "none"
    elif kind == "tool":
        body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise InvalidRequest(f"Unknown tool_choice type {kind!r}.", param="tool_choice")
    if choice.get("disable_parallel_tool_use") and body.get("tools"):
        body["parallel_tool_calls"] = False


# --- answer: chat -> Messages --------------------------------------------------------------


def from_chat(body: dict[str, Any], message_id: str, thinking: bool = False) -> dict[str, Any]:
    """The message; the upstream's reasoning as a thinking block when the client asked for
    thinking (its signature is empty: no Anthropic model made it)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = usage.reasoning_of(msg)
    if thinking and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for n, tc in enumerate(msg.get("tool_calls") or ()):
        fn = tc.get("function") or {}
        call_id = tc.get("id") or f"toolu_{message_id}_{n}"  # some upstreams send none
        content.append({"type": "tool_use", "id": call_id, "name": fn.get("name"),
                        "input": tool_input(fn.get("arguments"))})  # fmt: skip
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage.anthropic(body.get("usage")),
    }


def stop_reason(finish: Any) -> str:
    return STOP_REASONS.get(str(finish), "end_turn")


def tool_input(arguments: Any) -> Any:
    """A tool call's arguments as the JSON object Anthropic's `input` is (`{}` if unparsable)."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
