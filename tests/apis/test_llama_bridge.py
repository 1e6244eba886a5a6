"""Both bridges in front of a real llama.cpp server (llama-server, the tiny stories260K GGUF):
the Anthropic and OpenAI clients get answers, streams and usage from a real chat upstream."""

from collections.abc import Iterator

import anthropic
import openai
import pytest

from gateway.config import Settings
from tests.conftest import model_cfg
from tests.support.servers import GatewayServer, LlamaServer

PRICE = {"input_per_mtok": "0.01", "output_per_mtok": "0.03"}


@pytest.fixture(scope="module")
def gateway_url(llama_chat: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        models={"stories": model_cfg(llama_chat.url, "stories-chat", tier="small", price=PRICE)},
        routes={"auto": {"tiers": ["small"]}},
        policies_dir=tmp_path_factory.mktemp("p"),
        auth={"anonymous_team": "default"},
    )
    with GatewayServer(settings) as gw:
        yield gw.url


@pytest.mark.llama
def test_messages_on_llama(gateway_url: str) -> None:
    client = anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0)
    hi = [{"role": "user", "content": "Tell me a story about a cat."}]
    msg = client.messages.create(model="auto", max_tokens=12, messages=hi)  # type: ignore[list-item]
    assert msg.content and msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert 0 < msg.usage.output_tokens <= 12 and msg.usage.input_tokens > 0
    with client.messages.stream(model="stories", max_tokens=8, messages=hi) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and 0 < final.usage.output_tokens <= 8
    client.close()


@pytest.mark.llama
def test_responses_on_llama(gateway_url: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0)
    first = client.responses.create(model="auto", input="Once upon a time", max_output_tokens=10)
    assert first.output_text and first.usage is not None
    assert 0 < first.usage.output_tokens <= 10
    events = list(
        client.responses.create(
            model="stories",
            previous_response_id=first.id,
            input="Then?",
            max_output_tokens=8,
            stream=True,
        )
    )
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.usage is not None and events[-1].response.usage.input_tokens > 0
    client.close()
