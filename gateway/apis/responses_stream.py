"""Chat chunks -> Responses API SSE, in the order OpenAI sends them: `response.created`,
`response.in_progress`; per output item `response.output_item.added`, then for the upstream's
reasoning `response.reasoning_text.delta`... and `.done`, for a message
`response.content_part.added`, `response.output_text.delta`..., `response.output_text.done`,
`response.content_part.done`, or for a function call `response.function_call_arguments.delta`...,
`response.function_call_arguments.done` (a custom tool's: `response.custom_tool_call_input.delta`
and `.done` with its whole input); `response.output_item.done`; finally
`response.completed` (or `response.incomplete`) with usage, or `response.failed`. Every event
carries a `sequence_number`."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson

from gateway.apis import response_output as ro
from gateway.apis.chunks import ChunkRenderer, chat_chunks

Keep = Callable[[dict[str, Any], list[dict[str, Any]]], Awaitable[None]]


class _Events:
    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **data: Any) -> bytes:
        payload = orjson.dumps({"type": kind, **data, "sequence_number": self.sequence})
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


class _Output(ChunkRenderer):
    """The output items built so far; one is open (being streamed) at a time."""

    def __init__(self, event: _Events, custom: frozenset[str]) -> None:
        super().__init__()
        self.event = event
        self.custom = custom  # custom tools' names: their input is sent whole, at the end
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.buffer = ""  # the open item's text so far
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> its item
        self.arguments: dict[int, str] = {}  # chat tool call index -> its arguments so far

    def failed(self, shell: dict[str, Any], error: Any) -> dict[str, Any]:
        """The response object of a stream whose upstream failed mid-way."""
        err = error if isinstance(error, dict) else {}
        detail = {"code": str(err.get("code") or "server_error"),
                  "message": str(err.get("message") or "upstream error")}  # fmt: skip
        return {**shell, "status": "failed", "output": self.items, "error": detail}

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open = item
        self.items.append(item)
        out.append(self.event("response.output_item.added", output_index=len(self.items) - 1,
                              item=item))  # fmt: skip
        return out

    def reasoning(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["type"] != "reasoning":
            out = self._add(ro.reasoning_item("", status="in_progress"))
            self.buffer = ""
        self.buffer += delta
        out.append(self.event("response.reasoning_text.delta", **self._where(), content_index=0,
                              delta=delta))  # fmt: skip
        return out

    def text(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["type"] != "message":
            out = self._add(ro.message_item("", status="in_progress"))
            self.buffer = ""
            out.append(self.event("response.content_part.added", **self._where(),
                                  content_index=0, part=ro.output_text("")))  # fmt: skip
        self.buffer += delta
        out.append(self.event("response.output_text.delta", **self._where(), content_index=0,
                              delta=delta, logprobs=[]))  # fmt: skip
        return out

    def tool_call(self, call: dict[str, Any]) -> list[bytes]:
        k = call.get("index", 0)
        fn = call.get("function") or {}
        out: list[bytes] = []
        if k not in self.calls:
            call_id = str(call.get("id") or ro.new_id("call"))
            item = ro.call_item(call_id, str(fn.get("name") or ""), "", self.custom, "in_progress")
            self.calls[k] = item
            out = self._add(item)
        item = self.calls[k]
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            self.arguments[k] = self.arguments.get(k, "") + args
            if item["type"] == "custom_tool_call":
                return out  # its input is known once the JSON arguments are whole
            item["arguments"] += args
            out.append(self.event("response.function_call_arguments.delta",
                                  item_id=item["id"], output_index=self.items.index(item),
                                  delta=args))  # fmt: skip
        return out

    def _where(self) -> dict[str, Any]:
        assert self.open is not None
        return {"item_id": self.open["id"], "output_index": len(self.items) - 1}

    def close(self) -> list[bytes]:
        item = self.open
        if item is None:
            return []
        where = self._where()
        out: list[bytes] = []
        if item["type"] == "reasoning":
            out.append(self.event("response.reasoning_text.done", **where, content_index=0,
                                  text=self.buffer))  # fmt: skip
            item["content"] = [{"type": "reasoning_text", "text": self.buffer}]
        elif item["type"] == "message":
            part = ro.output_text(self.buffer)
            out.append(self.event("response.output_text.done", **where, content_index=0,
                                  text=self.buffer, logprobs=[]))  # fmt: skip
            out.append(self.event("response.content_part.done", **where, content_index=0,
                                  part=part))  # fmt: skip
            item["content"] = [part]
        elif item["type"] == "custom_tool_call":
            k = next(k for k, v in self.calls.items() if v is item)
            item["input"] = ro.custom_input(self.arguments.get(k, ""))
            out.append(self.event("response.custom_tool_call_input.delta", **where,
                                  delta=item["input"]))  # fmt: skip
            out.append(self.event("response.custom_tool_call_input.done", **where,
                                  input=item["input"]))  # fmt: skip
        else:
            out.append(self.event("response.function_call_arguments.done", **where,
                                  name=item["name"], arguments=item["arguments"]))  # fmt: skip
        item["status"] = "completed"
        out.append(self.event("response.output_item.done", output_index=where["output_index"],
                              item=item))  # fmt: skip
        self.open = None
        return out


async def render(
    stream: AsyncIterator[bytes], shell: dict[str, Any], keep: Keep
) -> AsyncIterator[bytes]:
    event = _Events()
    yield event("response.created", response=shell)
    yield event("response.in_progress", response=shell)
    output = _Output(event, ro.custom_tools(shell["tools"]))
    async with aclosing(chat_chunks(stream)) as chunks:  # a client that leaves closes the relay
        async for chunk in chunks:
            if "error" in chunk:
                yield event("response.failed", response=output.failed(shell, chunk["error"]))
                return
            for out in output.feed(chunk):
                yield out
    for out in output.close():
        yield out
    response = ro.finished(shell, output.items, output.finish, output.usage)
    await keep(response, ro.answer_messages(output.items))  # before the client may ask
    kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
    yield event(kind, response=response)
