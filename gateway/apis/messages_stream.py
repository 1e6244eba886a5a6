"""Chat chunks -> Anthropic Messages SSE: `message_start`, `ping`, then per content block
`content_block_start`, deltas (`thinking_delta` when the client asked for thinking and the
upstream reasons, `text_delta`, `input_json_delta`), `content_block_stop`; then
`message_delta` (stop reason and usage) and `message_stop`. A failure mid-stream ends it with
an `error` event in Anthropic's shape."""

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from gateway.apis import messages, usage
from gateway.apis.chunks import ChunkRenderer, chat_chunks


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Blocks(ChunkRenderer):
    """The content blocks opened so far; one is open at a time, as Anthropic streams them."""

    def __init__(self, thinking: bool) -> None:
        super().__init__()
        self.thinking = thinking  # show the upstream's reasoning as thinking blocks
        self.count = 0
        self.open: int | None = None  # index of the open block
        self.open_kind: str | int | None = None  # "text", or the chat tool call's index
        self.tools: dict[int, int] = {}  # chat tool call index -> block index

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        out = [event("content_block_stop", {"type": "content_block_stop", "index": self.open})]
        self.open = self.open_kind = None
        return out

    def start(self, kind: str | int, block: dict[str, Any]) -> list[bytes]:
        out = self.close()
        self.open, self.open_kind = self.count, kind
        self.count += 1
        data = {"type": "content_block_start", "index": self.open, "content_block": block}
        out.append(event("content_block_start", data))
        return out

    def text(self, text: str) -> list[bytes]:
        out = [] if self.open_kind == "text" else self.start("text", {"type": "text", "text": ""})
        out.append(_delta(self.open, {"type": "text_delta", "text": text}))
        return out

    def reasoning(self, text: str) -> list[bytes]:
        if not self.thinking:
            return []
        out = []
        if self.open_kind != "thinking":
            out = self.start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        out.append(_delta(self.open, {"type": "thinking_delta", "thinking": text}))
        return out

    def tool_call(self, call: dict[str, Any]) -> list[bytes]:
        k = call.get("index", 0)
        fn = call.get("function") or {}
        out: list[bytes] = []
        if k not in self.tools:
            block: dict[str, Any] = {"type": "tool_use", "input": {},
                                     "id": call.get("id") or f"toolu_{self.count}",
                                     "name": fn.get("name") or ""}  # fmt: skip
            out = self.start(k, block)
            self.tools[k] = self.count - 1
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            out.append(_delta(self.tools[k], {"type": "input_json_delta", "partial_json": args}))
        return out


def _delta(index: int | None, delta: dict[str, Any]) -> bytes:
    return event("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": delta})  # fmt: skip


async def render(
    stream: AsyncIterator[bytes],
    message_id: str,
    model: str | None,
    input_estimate: int,
    thinking: bool = False,
) -> AsyncIterator[bytes]:
    start: dict[str, Any] = {
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_estimate, "output_tokens": 0},
    }  # fmt: skip
    yield event("message_start", {"type": "message_start", "message": start})
    yield event("ping", {"type": "ping"})
    blocks = _Blocks(thinking)
    async with aclosing(chat_chunks(stream)) as chunks:  # a client that leaves closes the relay
        async for chunk in chunks:
            if "error" in chunk:
                yield error_event(chunk["error"])
                return
            for out in blocks.feed(chunk):
                yield out
    for out in blocks.close():
        yield out
    yield event("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": messages.stop_reason(blocks.finish),
                                            "stop_sequence": None},
                                  "usage": usage.anthropic(blocks.usage)})  # fmt: skip
    yield event("message_stop", {"type": "message_stop"})


def error_event(error: Any) -> bytes:
    message = error.get("message") if isinstance(error, dict) else str(error)
    return event("error", {"type": "error", "error": {"type": "api_error", "message": message}})
