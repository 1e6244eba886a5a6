"""At most `models.<name>.limits.max_connections` requests are in flight to a model (per worker):
more wait for a free connection, then fail over as unreachable; a stream holds its connection
until it ends (issue 12, problem 8: no limit on active upstream connections)."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.config import Settings
from gateway.errors import UpstreamError
from gateway.fault import upstream_at_fault
from gateway.providers.limit import BUSY
from tests.conftest import model_cfg
from tests.support.servers import GatewayServer

FREE = {"input_per_mtok": "0", "output_per_mtok": "0"}
ANSWER = {
    "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}  # fmt: skip


class Upstream(ThreadingHTTPServer):
    """Counts the requests it is serving at once; answers slowly."""

    daemon_threads = True

    def __init__(self, hold_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hold_s = hold_s
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.server.lock:
            self.server.active += 1
            self.server.peak = max(self.server.peak, self.server.active)
        try:
            if body.get("stream"):
                self._stream()
            else:
                time.sleep(self.server.hold_s)
                self._send(orjson.dumps(ANSWER))
        finally:
            with self.server.lock:
                self.server.active -= 1

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(5):
            delta = {"content": f"w{i} "} if i else {"role": "assistant", "content": ""}
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
            self._chunk(b"data: " + orjson.dumps(chunk) + b"\n\n")
            time.sleep(self.server.hold_s / 5)
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


def _upstream(hold_s: float) -> Iterator[Upstream]:
    server = Upstream(hold_s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def slow() -> Iterator[Upstream]:
    yield from _upstream(0.4)


def _settings(tmp_path: Path, url: str, limit: int, connect_s: float) -> Settings:
    m: dict[str, Any] = model_cfg(url, "m", price=FREE)
    m["limits"] = {"max_connections": limit}
    m["timeouts"] = {"connect_s": connect_s, "read_s": 10}
    return Settings(
        models={"m": m}, policies_dir=tmp_path, auth={"anonymous_team": "t"},
        cache={"enabled": False}, resilience={"retries": 0},
    )  # fmt: skip


def _chat(c: httpx.Client, stream: bool = False) -> httpx.Response:
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return c.post("/v1/chat/completions", json=body)


def test_requests_beyond_the_bound_wait_for_a_connection(tmp_path: Path, slow: Upstream) -> None:
    with (
        GatewayServer(_settings(tmp_path, slow.url, limit=2, connect_s=10)) as gw,
        httpx.Client(base_url=gw.url, timeout=30) as c,
        ThreadPoolExecutor(6) as pool,
    ):
        answers = list(pool.map(lambda _: _chat(c), range(6)))
    assert [r.status_code for r in answers] == [200] * 6
    assert slow.peak == 2  # never more than the bound at once


def test_a_stream_holds_its_connection_and_others_fail_over(tmp_path: Path, slow: Upstream) -> None:
    with (
        GatewayServer(_settings(tmp_path, slow.url, limit=1, connect_s=0.2)) as gw,
        httpx.Client(base_url=gw.url, timeout=30) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        streaming = pool.submit(lambda: _chat(c, stream=True))
        deadline = time.monotonic() + 5
        while slow.active == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = _chat(c)  # the one connection is the stream's
        assert streaming.result().status_code == 200
        assert "[DONE]" in streaming.result().text
        assert _chat(c).status_code == 200  # the stream ended: its connection is free again
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == BUSY
    assert slow.peak == 1


def test_a_full_bound_does_not_cool_the_model() -> None:
    assert not upstream_at_fault(UpstreamError("busy", model="m", retryable=True, code=BUSY))
