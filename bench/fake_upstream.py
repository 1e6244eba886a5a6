"""A minimal, fast fake OpenAI upstream for the benchmark: a raw asyncio HTTP/1.1 server
(keep-alive, uvloop when installed) answering every chat completion with the same precomputed
bytes: a JSON completion, or for `"stream": true` 13 SSE events (role, 10 words, finish,
usage) and `[DONE]`, sent chunked. `--delay-ms` holds every answer back (time to first byte).
`GET /stats` answers how many completions it has billed (each one bills `USAGE`), which the
fault-injection harness (bench/faults.py) compares with the gateway's settled spend, and
`GET /fault?mode=M` makes every later answer faulty: `reset` (half the answer, then the
connection is reset; not billed), `trickle` (one byte every 0.2 s; billed only if all of it is
sent), `1xx` (a `103 Early Hints` before the answer; billed), `oversized` (a 2 MiB body; not
billed), or `none`.

    .venv/bin/python bench/fake_upstream.py --port 9100 [--delay-ms 50]
"""

import argparse
import asyncio
import signal
from typing import cast

import orjson
from procs import run_fast

WORDS = ["Frugal", " routes", " each", " prompt", " to", " the", " cheapest", " good",
         " model", "."]  # fmt: skip
USAGE = {"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS)}
BASE = {"id": "chatcmpl-bench", "created": 1700000000, "model": "bench"}


def completion_body() -> bytes:
    return orjson.dumps({
        **BASE, "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "".join(WORDS)}}],
        "usage": USAGE,
    })  # fmt: skip


def stream_events() -> list[bytes]:
    chunk = {**BASE, "object": "chat.completion.chunk"}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": w} for w in WORDS]
    events = [{**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in deltas]  # fmt: skip
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**chunk, "choices": [], "usage": USAGE})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def http_json(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


def http_sse(events: list[bytes]) -> bytes:
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    parts = [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events]
    return head + b"".join(parts) + b"0\r\n\r\n"


COMPLETION = http_json(completion_body())
STREAM = http_sse(stream_events())
MODELS = http_json(orjson.dumps({"object": "list", "data": [{"id": "bench", "object": "model"}]}))
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
BILLED = [0]  # completions answered (each bills USAGE)
FAULT = ["none"]  # set with GET /fault?mode=...
FAULTS = ("none", "reset", "trickle", "1xx", "oversized")
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload\r\n\r\n"
OVERSIZED = http_json(b'{"padding": "' + b"x" * (2 * 1024 * 1024) + b'"}')


def answer(head: bytes, body: bytes) -> bytes:
    line = head.split(b"\r\n", 1)[0]
    if line.startswith(b"GET ") and b"/models" in line:
        return MODELS
    if line.startswith(b"GET ") and b"/stats" in line:
        return http_json(orjson.dumps({"completions": BILLED[0]}))
    if line.startswith(b"GET /fault?mode="):
        mode = line.split(b"=", 1)[1].split(b" ", 1)[0].decode()
        if mode in FAULTS:
            FAULT[0] = mode
        return http_json(orjson.dumps({"fault": FAULT[0]}))
    if not line.startswith(b"POST "):
        return NOT_FOUND
    compact = body.replace(b" ", b"")
    payload = STREAM if b'"stream":true' in compact else COMPLETION
    mode = FAULT[0]
    if mode == "oversized":
        return OVERSIZED
    if mode in ("reset", "trickle"):
        return payload  # sent by Upstream._send, which bills it if all of it goes out
    BILLED[0] += 1
    return EARLY_HINTS + payload if mode == "1xx" else payload


def content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            return int(line[15:].strip())
    return 0


class Upstream(asyncio.Protocol):
    def __init__(self, delay_s: float) -> None:
        self._delay = delay_s
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while (request := self._next_request()) is not None:
            self._send(answer(*request))

    def _next_request(self) -> tuple[bytes, bytes] | None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buf[:end])
        total = end + 4 + content_length(head)
        if len(self._buf) < total:
            return None
        body = bytes(self._buf[end + 4 : total])
        del self._buf[:total]
        return head, body

    def _send(self, payload: bytes) -> None:
        if payload in (COMPLETION, STREAM) and FAULT[0] == "reset":
            self._write(payload[: len(payload) // 2])
            if self._transport is not None:
                self._transport.abort()
            return
        if payload in (COMPLETION, STREAM) and FAULT[0] == "trickle":
            self._trickle(payload, 0)
            return
        if self._delay > 0:
            asyncio.get_running_loop().call_later(self._delay, self._write, payload)
        else:
            self._write(payload)

    def _trickle(self, payload: bytes, sent: int) -> None:
        if self._transport is None or self._transport.is_closing():
            return  # the client gave up: nothing billed
        if sent == len(payload):
            BILLED[0] += 1
            return
        self._transport.write(payload[sent : sent + 1])
        asyncio.get_running_loop().call_later(0.2, self._trickle, payload, sent + 1)

    def _write(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(port: int, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Upstream(delay_s), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    args = p.parse_args()
    run_fast(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
