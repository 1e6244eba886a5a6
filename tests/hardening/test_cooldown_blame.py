"""Only failures that are the model's fault cool it down for every team: a 4xx the request
caused (400 invalid, 413 too long, a content filter, a context-length error sent inside a
stream) does not (issue 12, problem 12: one team's bad input put a model in cool-down)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from gateway.config import ModelConfig, Resilience
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.fault import stream_error_status, upstream_at_fault
from gateway.providers.base import Endpoint
from gateway.providers.registry import build_provider
from gateway.resilience import Cooldowns, Resilient

FREE = {"input_per_mtok": "0", "output_per_mtok": "0"}


def _resilient(retries: int = 0) -> Resilient:
    cfg = Resilience(retries=retries, backoff_s=0.001, backoff_max_s=0.002, cooldown_s=60)
    return Resilient(cfg, Cooldowns(60))


def _fails(error: UpstreamError) -> Callable[[str], Awaitable[str]]:
    async def attempt(model: str) -> str:
        raise error

    return attempt


@pytest.mark.parametrize("status", [400, 409, 413, 415, 422])
def test_a_4xx_the_request_caused_does_not_cool_the_model(status: int) -> None:
    for err in (
        UpstreamError("bad input", model="a", retryable=False, upstream_status=status),
        UpstreamRejected("bad input", model="a", upstream_status=status),
    ):
        r = _resilient()
        with pytest.raises(UpstreamError):
            asyncio.run(r.call(["a"], _fails(err), [], "r"))
        assert not r.cooldowns.cooling("a"), (status, type(err).__name__)


@pytest.mark.parametrize(
    "err",
    [
        UpstreamError("down", model="a", retryable=True, upstream_status=503),
        UpstreamError("busy", model="a", retryable=True, upstream_status=429),
        UpstreamError("bad key", model="a", retryable=False, upstream_status=401),
        UpstreamError("unreachable", model="a", retryable=True),
        UpstreamTimeout("slow", model="a"),
    ],
)
def test_the_models_own_failures_cool_it(err: UpstreamError) -> None:
    r = _resilient(retries=1)
    with pytest.raises(UpstreamError):
        asyncio.run(r.call(["a"], _fails(err), [], "r"))
    assert r.cooldowns.cooling("a")
    assert upstream_at_fault(err)


def test_stream_error_events_name_their_cause() -> None:
    def ev(**err: object) -> dict[str, object]:
        return {"error": {"message": "x", **err}}

    assert stream_error_status(ev(code=400, type="exceed_context_size_error")) == 400  # llama
    assert stream_error_status(ev(code="context_length_exceeded")) == 400  # OpenAI
    assert stream_error_status(ev(type="invalid_request_error", code=None)) == 400
    assert stream_error_status(ev(code="content_filter")) == 400
    assert stream_error_status(ev(code=500, type="server_error")) == 500
    assert stream_error_status(ev(type="server_error")) is None
    assert stream_error_status({"error": "a string"}) is None


# --- a real upstream that sends an error event inside a 200 stream ---------------------------

EVENTS = {
    b"/ctx/": {"error": {"message": "This model's maximum context length is 8192 tokens",
                         "type": "invalid_request_error", "code": "context_length_exceeded"}},
    b"/filter/": {"error": {"message": "The response was filtered", "type": "invalid_request_error",
                            "code": "content_filter"}},
    b"/llama/": {"error": {"code": 400, "type": "exceed_context_size_error",
                           "message": "the request exceeds the available context size"}},
    b"/down/": {"error": {"code": 500, "type": "server_error", "message": "CUDA error"}},
}  # fmt: skip


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    path = head.split(b" ", 2)[1]
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    event = next(v for k, v in EVENTS.items() if path.startswith(k))
    body = b"data: " + orjson.dumps(event) + b"\n\n"
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    writer.close()


async def _open(port: int, prefix: str) -> tuple[Resilient, bool]:
    cfg = ModelConfig(model="m", base_url=f"http://127.0.0.1:{port}/{prefix}/v1", price=FREE)
    provider = build_provider("a", cfg)
    r = _resilient()

    def open_fn(model: str) -> AsyncIterator[dict[str, object]]:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        return provider.stream(Endpoint.chat, body)

    try:
        with pytest.raises(UpstreamError):
            await r.open_stream(["a"], open_fn, [], "r")  # type: ignore[arg-type]
    finally:
        await provider.close()
    return r, r.cooldowns.cooling("a")


def test_an_error_event_in_a_stream_cools_the_model_only_when_it_is_the_models() -> None:
    async def scenario() -> dict[str, bool]:
        server = await asyncio.start_server(_serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return {p: (await _open(port, p))[1] for p in ("ctx", "filter", "llama", "down")}
        finally:
            server.close()
            await server.wait_closed()

    cooling = asyncio.run(scenario())
    assert cooling == {"ctx": False, "filter": False, "llama": False, "down": True}
