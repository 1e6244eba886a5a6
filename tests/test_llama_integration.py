"""The gateway in front of a real llama.cpp server (llama-server) serving a real GGUF model
(the tiny stories260K keeps it fast), through the official `openai` client."""

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.config import Settings
from tests.conftest import model_cfg
from tests.support.servers import STORIES, GatewayServer, LlamaServer

MSG = [{"role": "user", "content": "Tell me a story about a cat."}]


def _settings(chat_url: str, embed_url: str, policies: Path) -> Settings:
    return Settings(
        models={
            "stories": model_cfg(
                chat_url,
                "stories-chat",
                tier="small",
                price={"input_per_mtok": "0.01", "output_per_mtok": "0.03"},
            ),
            "stories-embed": model_cfg(embed_url, "stories-embed", kind="embedding"),
        },
        routes={"auto": {"tiers": ["small"]}},
        policies_dir=policies,
        auth={"anonymous_team": "default"},
    )


@pytest.fixture(scope="module")
def client(
    llama_chat: LlamaServer, llama_embed: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    settings = _settings(llama_chat.url, llama_embed.url, tmp_path_factory.mktemp("p"))
    with GatewayServer(settings) as gw:
        yield openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)


def test_chat(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=MSG,
        max_tokens=16,
        seed=1,
        temperature=0,  # type: ignore[arg-type]
    )
    r = raw.parse()
    assert r.choices[0].message.content
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 16
    assert raw.headers["x-frugal-model"] == "stories"
    assert "x-frugal-usage-estimated" not in raw.headers  # llama-server reports usage
    assert float(raw.headers["x-frugal-cost-usd"]) > 0


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="stories", messages=MSG, max_tokens=12, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def test_completions_and_embeddings(client: openai.OpenAI) -> None:
    c = client.completions.create(model="stories", prompt="Once upon a time", max_tokens=8)
    assert c.choices[0].text and c.usage is not None
    e = client.embeddings.create(model="stories-embed", input=["a cat", "a dog"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 8
    ids = {m.id for m in client.models.list().data}
    assert {"auto", "stories", "stories-embed"} <= ids


def test_upstream_killed_mid_stream_ends_with_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llama = LlamaServer(STORIES, "victim", parallel=1).wait()
    try:
        settings = _settings(llama.url, llama.url, tmp_path)
        with GatewayServer(settings) as gw:
            c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
            stream = c.chat.completions.create(
                model="stories", messages=MSG, max_tokens=900, stream=True,  # type: ignore[arg-type]
                extra_body={"ignore_eos": True},  # an unknown field, passed through upstream
            )  # fmt: skip
            received = 0
            killer = threading.Timer(0, llama.process.proc.kill)
            with caplog.at_level(logging.WARNING), pytest.raises(openai.APIError) as err:
                for _chunk in stream:
                    received += 1
                    if received == 3:
                        killer.start()
            assert "stories" in str(err.value)
            assert received >= 3
            assert any("stream failed" in r.getMessage() for r in caplog.records)
    finally:
        llama.stop()
