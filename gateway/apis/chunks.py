"""The pipeline answers a stream as chat SSE bytes (relayed, or replayed from the cache); a
translator reads them back as chunk dicts. `[DONE]` ends the stream."""

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson


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
