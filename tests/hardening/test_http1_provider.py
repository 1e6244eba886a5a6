"""The OpenAI-compatible provider over http1.py, against raw servers: the limits and the
deadline from a model's configuration, the SSE line cap, what may be retried without paying
twice (resilience.py's rule), keys that cannot go in a header refused at start-up, and the
budget hold that outlives every attempt."""

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, ModelConfig, Resilience, Settings
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.providers.base import Endpoint
from gateway.providers.deadline import REQUEST_END, attempt_deadline
from gateway.providers.openai_compat import Lines, OpenAICompatProvider
from gateway.providers.registry import build_provider, check_egress
from gateway.resilience import Cooldowns, Resilient
from tests.conftest import model_cfg
from tests.hardening.test_http1_conformance import Handler, Raw, read_request, sized

pytestmark = pytest.mark.anyio
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Handler], Awaitable[Raw]]]:
    started: list[Raw] = []

    async def start(handler: Handler) -> Raw:
        r = Raw(handler)
        r.server = await asyncio.start_server(r._run, "127.0.0.1", 0)
        started.append(r)
        return r

    yield start
    for r in started:
        assert r.server is not None
        r.server.close()


def provider(url: str, **kw: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider("m", ModelConfig(**model_cfg(url, "m", **kw)), None)


def sse_head() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def drain(p: OpenAICompatProvider) -> list[dict[str, Any]]:
    return [c async for c in p.stream(Endpoint.chat, BODY)]


# --- limits and the deadline from the configuration (issue 12 #11) -------------------------


async def test_a_trickling_stream_ends_at_the_models_total_s(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(sse_head())
        while True:  # a valid chunk every 50 ms, forever: read_s never fires
            writer.write(chunk(CHUNK))
            await writer.drain()
            await asyncio.sleep(0.05)

    s = await raw(handler)
    p = provider(s.url(), timeouts={"connect_s": 1, "read_s": 5, "total_s": 0.5})
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout) as e:
        async with asyncio.timeout(10):  # the old client streamed until this fired
            await drain(p)
    assert time.monotonic() - t0 < 5
    assert e.value.maybe_processed and not e.value.retryable  # it was generating: billed
    await p.close()


async def test_a_body_over_max_response_bytes(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(sized(b'{"a":"' + b"x" * 5000 + b'"}'))
        await writer.drain()
        await reader.read()

    s = await raw(handler)
    p = provider(s.url(), limits={"max_response_bytes": 4096})
    with pytest.raises(UpstreamError, match="exceeds 4096 B"):
        await p.complete(Endpoint.chat, BODY)
    await p.close()


async def test_an_sse_line_over_the_cap(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(sse_head() + chunk(CHUNK))
        while True:  # one line that never ends
            writer.write(chunk(b"y" * 1000))
            await writer.drain()
            await asyncio.sleep(0.001)

    s = await raw(handler)
    p = provider(s.url(), limits={"max_sse_line_bytes": 4096})
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError, match="max_sse_line_bytes"):
        async with asyncio.timeout(10):
            async for c in p.stream(Endpoint.chat, BODY):
                got.append(c)
    assert len(got) == 1  # the chunks before the long line were passed on
    await p.close()


def test_lines_split_without_quadratic_copies() -> None:
    lines = Lines(cap=10_000_000)
    t0 = time.process_time()
    for _ in range(200_000):  # a 200 KB line, one byte per piece
        assert lines.feed(b"a") == []
    assert lines.feed(b"\nb\nc") == [b"a" * 200_000, b"b"]
    assert time.process_time() - t0 < 5  # generous: linear is ~0.1 s, quadratic ~minutes
    small = Lines(cap=8)
    assert small.feed(b"12345\n678") == [b"12345"] and not small.overlong
    small.feed(b"9abcdef")
    assert small.overlong


# --- what may be tried again (issue 12 #12: a POST paid twice) -----------------------------


async def test_nothing_sent_is_retryable_anything_after_is_not(raw) -> None:  # type: ignore[no-untyped-def]
    refused = provider("http://127.0.0.1:9/v1")
    with pytest.raises(UpstreamError) as e:
        await refused.complete(Endpoint.chat, BODY)
    assert e.value.retryable and not e.value.maybe_processed

    async def took_it_and_died(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(reader)

    s = await raw(took_it_and_died)
    p = provider(s.url())
    with pytest.raises(UpstreamError) as e:
        await p.complete(Endpoint.chat, BODY)
    assert e.value.maybe_processed and not e.value.retryable

    for status, maybe in ((503, False), (429, False), (500, False), (504, True)):
        answer = b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}" % status

        async def handler(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await read_request(reader)
            w.write(answer)  # noqa: B023 - used before the loop moves on
            await w.drain()
            await reader.read()

        s = await raw(handler)
        p = provider(s.url())
        with pytest.raises(UpstreamError) as e:
            await p.complete(Endpoint.chat, BODY)
        assert e.value.upstream_status == status
        assert e.value.maybe_processed is maybe and e.value.retryable is not maybe
        await p.close()


async def test_resilience_never_sends_a_possibly_billed_request_again(raw) -> None:  # type: ignore[no-untyped-def]
    """A read timeout after the request was sent: the old rule retried it (and fell back to
    the next model), paying up to (retries + 1) x candidates times."""
    seen: list[str] = []

    def slow(name: str) -> Handler:
        async def handler(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            seen.append(name)
            await read_request(reader)
            await asyncio.sleep(5)

        return handler

    a, b = await raw(slow("a")), await raw(slow("b"))
    fast = {"connect_s": 1, "read_s": 0.2}
    providers = {"a": provider(a.url(), timeouts=fast), "b": provider(b.url(), timeouts=fast)}
    r = Resilient(Resilience(retries=2, backoff_s=0.001), Cooldowns(0))
    with pytest.raises(UpstreamTimeout):
        await r.call(["a", "b"], lambda m: providers[m].complete(Endpoint.chat, BODY), [], "r")
    assert seen == ["a"]
    for p in providers.values():
        await p.close()


async def test_a_connect_failure_falls_back(raw) -> None:  # type: ignore[no-untyped-def]
    async def ok(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(reader)
        w.write(sized(b'{"choices":[]}'))
        await w.drain()
        await reader.read()

    s = await raw(ok)
    providers = {"dead": provider("http://127.0.0.1:9/v1"), "live": provider(s.url())}
    r = Resilient(Resilience(retries=1, backoff_s=0.001), Cooldowns(0))
    attempts: list[Any] = []
    model, _ = await r.call(
        ["dead", "live"], lambda m: providers[m].complete(Endpoint.chat, BODY), attempts, "r"
    )
    assert model == "live" and len(attempts) == 3  # dead twice (nothing sent), then live
    for p in providers.values():
        await p.close()


# --- the budget hold outlives every attempt (issue 12 #11) ---------------------------------


def test_total_s_must_stay_below_the_hold() -> None:
    models = {"m": model_cfg("http://127.0.0.1:1/v1", "m", timeouts={"total_s": 900})}
    with pytest.raises(ValueError, match="total_s"):
        Settings(models=models, budget={"reservation_ttl_s": 900})
    Settings(models=models, budget={"reservation_ttl_s": 960})  # 60 s of margin: accepted
    defaults = Settings(models={"m": model_cfg("http://127.0.0.1:1/v1", "m")})
    assert defaults.models["m"].timeouts.total_s + 60 <= defaults.budget.reservation_ttl_s


async def test_all_attempts_end_within_the_window() -> None:
    """Retries and fallbacks together stop when the request's window (the hold's TTL minus
    the margin) is over, and each attempt's own deadline is capped by it."""
    deadlines: list[float] = []

    async def attempt(model: str) -> str:
        deadlines.append(attempt_deadline(600.0) - time.monotonic())
        await asyncio.sleep(0.15)
        raise UpstreamError("down", model=model, retryable=True)

    r = Resilient(Resilience(retries=10, backoff_s=0.001), Cooldowns(0), window_s=0.4)
    t0 = time.monotonic()
    with pytest.raises(UpstreamError):
        await r.call(["a", "b"], attempt, [], "r")
    assert time.monotonic() - t0 < 2  # not 22 attempts x 0.15 s
    assert 2 <= len(deadlines) <= 4
    assert all(d <= 0.4 for d in deadlines)  # never the model's 600 s
    assert REQUEST_END.get() is None  # nothing leaks past the call


# --- headers that cannot be sent (issue 12 #12) --------------------------------------------


@pytest.mark.parametrize(
    "key", ["sk-abc\n", "sk-abc\r\nX-Evil: 1", "sk-\x7fabc", "sk-\tabc", "sk-é"]
)
def test_a_key_with_control_characters_is_refused_at_start_up(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY_T", key)
    for kind in ("openai", "litellm"):
        cfg = ModelConfig(**model_cfg("http://127.0.0.1:1/v1", "m", api_key_env="UPSTREAM_KEY_T",
                                      provider=kind))  # fmt: skip
        with pytest.raises(ConfigError, match=r"models\.mine\.api_key_env: UPSTREAM_KEY_T"):
            build_provider("mine", cfg)
        with pytest.raises(ConfigError):
            check_egress({"mine": cfg})
        with pytest.raises(ConfigError) as e:
            build_provider("mine", cfg)
        assert key.strip() not in str(e.value)  # the key itself is never in the message


@pytest.mark.parametrize("url", ["http://h/v1\r\nX-Evil: 1", "http://h/v 1", "http://h/\tv1"])
def test_a_base_url_with_control_characters_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        ModelConfig(**model_cfg(url, "m"))


def test_check_config_reports_a_bad_key(tmp_path: Path) -> None:
    config = {"models": {"m": model_cfg("http://127.0.0.1:1/v1", "m", api_key_env="K_T")}}
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"K_T": "sk-123\n", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "gateway.cli", "check-config", "--config", str(path)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "models.m.api_key_env: K_T" in run.stderr and "sk-123" not in run.stderr
