"""Chat chunks -> Responses API SSE, in the order OpenAI sends them: `response.created`,
`response.in_progress`; per output item `response.output_item.added`, then for a message
`response.content_part.added`, `response.output_text.delta`..., `response.output_text.done`,
`response.content_part.done`, or for a function call `response.function_call_arguments.delta`...,
`response.function_call_arguments.done`; `response.output_item.done`; finally
`response.completed` (or `response.incomplete`) with usage, or `response.failed`. Every event
carries a `sequence_number`."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from gateway.apis import responses
from gateway.apis.chunks import chat_chunks

Keep = Callable[[dict[str, Any], list[dict[str, Any]]], Awaitable[None]]


class _Events:
    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **data: Any) -> bytes:
        payload = orjson.dumps({"type": kind, **data, "sequence_number": self.sequence})
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"


class _Output:
    """The output items built so far; one is open (being streamed) at a time."""

    def __init__(self, event: _Events) -> None:
        self.event = event
        self.items: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> its item

    def _add(self, item: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open = item
        self.items.append(item)
        out.append(self.event("response.output_item.added", output_index=len(self.items) - 1,
                              item=item))  # fmt: skip
        return out

    def text_delta(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["type"] != "message":
            out = self._add(responses.message_item("", status="in_progress"))
            self.text = ""
            out.append(self.event("response.content_part.added", **self._where(),
                                  content_index=0, part=responses.output_text("")))  # fmt: skip
        self.text += delta
        out.append(self.event("response.output_text.delta", **self._where(), content_index=0,
                              delta=delta, logprobs=[]))  # fmt: skip
        return out

    def call_delta(self, call: dict[str, Any]) -> list[bytes]:
        k = call.get("index", 0)
        fn = call.get("function") or {}
        out: list[bytes] = []
        if k not in self.calls:
            call_id = str(call.get("id") or responses.new_id("call"))
            item = responses.call_item(call_id, str(fn.get("name") or ""), "", "in_progress")
            self.calls[k] = item
            out = self._add(item)
        item = self.calls[k]
        args = fn.get("arguments")
        if isinstance(args, str) and args:
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
        if item["type"] == "message":
            part = responses.output_text(self.text)
            out.append(self.event("response.output_text.done", **where, content_index=0,
                                  text=self.text, logprobs=[]))  # fmt: skip
            out.append(self.event("response.content_part.done", **where, content_index=0,
                                  part=part))  # fmt: skip
            item["content"] = [part]
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
    output = _Output(event)
    finish: Any = None
    reported: Any = None
    async for chunk in chat_chunks(stream):
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            error = {"code": str(err.get("code") or "server_error"),
                     "message": str(err.get("message") or "upstream error")}  # fmt: skip
            failed = {**shell, "status": "failed", "output": output.items, "error": error}
            yield event("response.failed", response=failed)
            return
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                for out in output.text_delta(delta["content"]):
                    yield out
            for call in delta.get("tool_calls") or ():
                for out in output.call_delta(call):
                    yield out
            finish = choice.get("finish_reason") or finish
        if isinstance(chunk.get("usage"), dict):
            reported = chunk["usage"]
    for out in output.close():
        yield out
    response = responses.finished(shell, output.items, finish, reported)
    await keep(response, responses.answer_messages(output.items))  # before the client may ask
    kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
    yield event(kind, response=response)
