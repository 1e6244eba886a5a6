"""The pipeline answers a stream as chat SSE bytes (relayed, or replayed from the cache); a
translator reads them back as chunk dicts. `[DONE]` ends the stream."""

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from gateway.apis import usage


async def chat_chunks(stream: AsyncIterator[bytes]) -> AsyncGenerator[dict[str, Any], None]:
    """Each `data:` event as a dict (an `{"error": ...}` event included), until `[DONE]`."""
    buffer = b""
    try:
        async for raw in stream:
            if not buffer and raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2:
                events = [raw[6:-2]]  # the usual piece: one whole event (gateway/sse.py)
            else:
                buffer += raw
                *whole, buffer = buffer.split(b"\n\n")
                events = [line[5:].strip() for event in whole for line in event.split(b"\n")
                          if line.startswith(b"data:")]  # fmt: skip
            for data in events:
                if data == b"[DONE]":
                    return
                chunk = orjson.loads(data)
                if isinstance(chunk, dict):
                    yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # the relay settles what was generated (its `finally`)


class ChunkRenderer:
    """Reads chat chunks (their first choice only: neither Messages nor Responses has `n`) and
    keeps the finish reason and the last usage; a subclass turns each delta into its own API's
    events with `reasoning`, `text` and `tool_call`."""

    def __init__(self) -> None:
        self.finish: Any = None  # the chat finish_reason
        self.usage: Any = None  # the chat usage dict, from the last chunk that has one

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        """The events one chat chunk makes."""
        out: list[bytes] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = usage.reasoning_of(delta)
            if reasoning:
                out += self.reasoning(reasoning)
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self.text(delta["content"])
            for call in delta.get("tool_calls") or ():
                out += self.tool_call(call)
            self.finish = choice.get("finish_reason") or self.finish
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        return out

    def reasoning(self, text: str) -> list[bytes]:
        raise NotImplementedError

    def text(self, text: str) -> list[bytes]:
        raise NotImplementedError

    def tool_call(self, call: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError
