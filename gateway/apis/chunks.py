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
            buffer += raw
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    chunk = orjson.loads(data)
                    if isinstance(chunk, dict):
                        yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()  # the relay settles what was generated (its `finally`)
