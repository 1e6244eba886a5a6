"""Non-OpenAI providers go through litellm behind the same interface. Here litellm's OpenAI
adapter talks to the in-process fake upstream (the real wire format), plus error mapping."""

import pytest

from gateway.config import ModelConfig
from gateway.errors import UpstreamError, UpstreamRejected
from gateway.providers.base import Endpoint
from gateway.providers.litellm_provider import LiteLLMProvider
from tests.support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _provider(upstream: FakeOpenAI, key: str | None = None) -> LiteLLMProvider:
    cfg = ModelConfig(provider="litellm", model="openai/fake-large", base_url=upstream.url,
                      price={"input_per_mtok": 0, "output_per_mtok": 0})  # fmt: skip
    return LiteLLMProvider("hosted", cfg, key or upstream.api_key)


MSG = [{"role": "user", "content": "hello there"}]


async def test_complete_and_stream_with_usage(upstream: FakeOpenAI) -> None:
    p = _provider(upstream)
    body = {"messages": MSG, "max_tokens": 5, "vendor_flag": True, "api_base": "http://evil"}
    c = await p.complete(Endpoint.chat, body)
    assert c.body["choices"][0]["message"]["content"].startswith("Frugal")
    assert c.usage is not None and c.usage.completion_tokens == 10
    sent = upstream.requests[-1]
    assert sent["model"] == "fake-large" and sent["vendor_flag"] is True
    assert "api_base" not in sent or sent["api_base"] == "http://evil"  # only ever as body data
    chunks = [
        ch async for ch in p.stream(Endpoint.chat, {"messages": MSG,
                                                    "stream_options": {"include_usage": True}})
    ]  # fmt: skip
    text = "".join((ch["choices"][0].get("delta") or {}).get("content") or ""
                   for ch in chunks if ch.get("choices"))  # fmt: skip
    assert text == "Frugal routes each prompt to the cheapest good model."
    assert any(ch.get("usage") for ch in chunks)


async def test_errors_are_mapped(upstream: FakeOpenAI) -> None:
    p = _provider(upstream)
    upstream.script.fail_next, upstream.script.fail_status = 1, 503
    with pytest.raises(UpstreamError) as e:
        await p.complete(Endpoint.chat, {"messages": MSG})
    assert e.value.retryable and e.value.model == "hosted"
    upstream.script.fail_next, upstream.script.fail_status = 1, 400
    with pytest.raises(UpstreamRejected):
        await p.complete(Endpoint.chat, {"messages": MSG})
    bad = _provider(upstream, key="sk-wrong-key-value")
    with pytest.raises(UpstreamError) as e:
        await bad.complete(Endpoint.chat, {"messages": MSG})
    assert not e.value.retryable and "sk-wrong-key-value" not in e.value.message


async def test_the_attempts_traceparent_reaches_the_upstream(upstream: FakeOpenAI) -> None:
    from gateway.telemetry.tracecontext import UPSTREAM_TRACEPARENT

    p = _provider(upstream)
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    token = UPSTREAM_TRACEPARENT.set(header)
    try:
        await p.complete(Endpoint.chat, {"messages": MSG})
        _ = [ch async for ch in p.stream(Endpoint.chat, {"messages": MSG})]
    finally:
        UPSTREAM_TRACEPARENT.reset(token)
    await p.complete(Endpoint.chat, {"messages": MSG})  # outside an attempt: no header
    assert upstream.traceparents[-3:] == [header, header, None]
