"""A chat answer as Responses API output: output items (`reasoning` where the upstream sends
its reasoning, `message`, `function_call`, and
`custom_tool_call` for custom (freeform) tools, which the bridge sends upstream as a function
taking one string, `input`), the final response object, and the answer as the chat turn kept
in a stored conversation."""

import uuid
from typing import Any

import orjson

from gateway.apis import usage

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
CUSTOM_INPUT = {"type": "object", "properties": {"input": {"type": "string"}},
                "required": ["input"], "additionalProperties": False}  # fmt: skip


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def custom_tools(tools: Any) -> frozenset[str]:
    """The names of a request's custom (freeform) tools."""
    return frozenset(str(t.get("name")) for t in tools or () if t.get("type") == "custom")


def custom_input(arguments: str) -> str:
    """A custom tool's input, from the arguments of the function call that stands for it."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return arguments  # a model that did not follow the one-string schema: its text as is


def custom_arguments(text: Any) -> str:
    return orjson.dumps({"input": str(text or "")}).decode()


def finished(
    shell: dict[str, Any], output: list[dict[str, Any]], finish: Any, chat_usage: Any
) -> dict[str, Any]:
    """The final response object: its output items, status and usage."""
    reason = INCOMPLETE.get(str(finish))
    return {
        **shell, "output": output, "usage": usage.responses(chat_usage),
        "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
    }  # fmt: skip


def message_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": new_id("msg"), "status": status, "role": "assistant",
            "content": [output_text(text)] if status == "completed" else []}  # fmt: skip


def reasoning_item(text: str, status: str = "completed") -> dict[str, Any]:
    """The upstream's reasoning (a chat `reasoning_content`), as raw reasoning text."""
    content = [{"type": "reasoning_text", "text": text}] if status == "completed" else []
    return {"type": "reasoning", "id": new_id("rs"), "summary": [], "content": content,
            "status": status}  # fmt: skip


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    call_id: str, name: str, arguments: str, custom: frozenset[str], status: str = "completed"
) -> dict[str, Any]:
    """A `function_call` item, or a `custom_tool_call` when `name` is a custom tool."""
    if name in custom:
        return {"type": "custom_tool_call", "id": new_id("ctc"), "call_id": call_id,
                "name": name, "input": custom_input(arguments) if arguments else "",
                "status": status}  # fmt: skip
    return {"type": "function_call", "id": new_id("fc"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}  # fmt: skip


def answer_messages(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output items as the chat turn to keep in the conversation (one assistant message)."""
    text = "".join(p["text"] for item in output if item["type"] == "message"
                   for p in item["content"])  # fmt: skip
    calls = []
    for item in output:
        if item["type"] in ("function_call", "custom_tool_call"):
            args = item.get("arguments")
            if item["type"] == "custom_tool_call":
                args = custom_arguments(item["input"])
            calls.append({"id": item["call_id"], "type": "function",
                          "function": {"name": item["name"], "arguments": args}})  # fmt: skip
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return [msg]


def from_chat(
    body: dict[str, Any], shell: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the response object, the answer as chat messages for the stored conversation)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    custom = custom_tools(shell["tools"])
    output: list[dict[str, Any]] = []
    reasoning = usage.reasoning_of(msg)
    if reasoning:
        output.append(reasoning_item(reasoning))
    if isinstance(msg.get("content"), str) and msg["content"]:
        output.append(message_item(msg["content"]))
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        call_id = str(tc.get("id") or new_id("call"))  # some upstreams send none
        output.append(call_item(call_id, str(fn.get("name")),
                                str(fn.get("arguments") or ""), custom))  # fmt: skip
    response = finished({**shell, "model": body.get("model", shell["model"])}, output,
                        choice.get("finish_reason"), body.get("usage"))  # fmt: skip
    return response, answer_messages(output)
