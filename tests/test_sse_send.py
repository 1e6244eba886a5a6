"""`front.send_sse`: every chunk then the end of the body; a client that goes away (told by
`receive`, or by `send` raising) ends the relay, whose `finally` runs (it settles the cost)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.front import send_sse


def _relay(closed: list[str], stall_after: int | None = None) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            for i in range(5):
                if stall_after is not None and i == stall_after:
                    await asyncio.sleep(30)  # an upstream that is slow to send the next token
                yield f"data: {i}\n\n".encode()
        finally:
            closed.append("settled")

    return gen()


async def _stays() -> dict[str, Any]:
    """`receive` of a client that stays until the response ends."""
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


def test_every_chunk_then_the_end() -> None:
    sent: list[dict[str, Any]] = []
    closed: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(send_sse(_stays, send, _relay(closed), {"x-request-id": "r1"}))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert (b"x-request-id", b"r1") in sent[0]["headers"]
    bodies = [m["body"] for m in sent[1:]]
    assert bodies == [f"data: {i}\n\n".encode() for i in range(5)] + [b""]
    assert sent[-1]["more_body"] is False and closed == ["settled"]


def test_a_client_that_leaves_ends_the_relay_at_once() -> None:
    sent: list[dict[str, Any]] = []
    closed: list[str] = []

    async def main() -> None:
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) == 3:  # start + two chunks, then the client goes away
                gone.set()

        await asyncio.wait_for(send_sse(receive, send, _relay(closed, stall_after=2), {}), 5)
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    asyncio.run(main())
    assert len(sent) == 3 and closed == ["settled"]


def test_a_send_that_fails_ends_the_relay() -> None:
    closed: list[str] = []
    calls = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("client gone")

    asyncio.run(send_sse(_stays, send, _relay(closed), {}))
    assert calls == 3 and closed == ["settled"]
