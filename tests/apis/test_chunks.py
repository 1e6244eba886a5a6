"""Reading the pipeline's chat SSE back as chunks: whole events (the usual case), events split
across pieces or sharing one, an error event, and `[DONE]` ending the stream."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.apis.chunks import chat_chunks


def read(pieces: list[bytes]) -> list[dict[str, Any]]:
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            for p in pieces:
                yield p
        finally:
            closed.append(True)

    async def run() -> list[dict[str, Any]]:
        return [c async for c in chat_chunks(source())]

    out = asyncio.run(run())
    assert closed == [True]  # the source (the relay) is always closed
    return out


def test_whole_split_and_shared_events() -> None:
    whole = [b'data: {"a":1}\n\n', b'data: {"a":2}\n\n', b"data: [DONE]\n\n", b'data: {"a":3}\n\n']
    assert read(whole) == [{"a": 1}, {"a": 2}]
    split = [
        b'data: {"a"',
        b':1}\n\ndata: {"a":2}\n',
        b'\n: comment\n\ndata: {"error": {"m": 1}}\n\n',
    ]
    assert read(split) == [{"a": 1}, {"a": 2}, {"error": {"m": 1}}]
