"""Pass-through to upstreams that speak the client APIs natively (issue 16 items 1 and 2), with
the official `openai` and `anthropic` clients against the fake native upstream: the client's
own request reaches the upstream (model id and output cap replaced), the answer and every
stream event come back as they were (unknown event types included), usage is read from the
native shapes for the cost, Anthropic's headers are forwarded with x-api-key auth, and a
conversation continued with previous_response_id stays on the model holding its state."""

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway.apis.native import merge, relay
from gateway.call import Call
from gateway.config import Settings
from gateway.keys import Principal, create_key
from gateway.providers.base import Endpoint
from gateway.usage import Usage
from tests.conftest import model_cfg
from tests.support.fake_native import (
    COUNTED,
    MESSAGES_USAGE,
    TEXT,
    UNKNOWN_MESSAGES_EVENT,
    UNKNOWN_RESPONSES_EVENT,
    FakeNative,
)
from tests.support.servers import GatewayServer

KEY_ENV = "FRUGAL_TEST_NATIVE_KEY"
ADMIN = "admin-secret-for-native-tests"
SPENDER: list[str] = []  # the key of a team with a budget (set by the gateway fixture)
UPSTREAM_KEY = "sk-native-upstream-456"


@pytest.fixture(scope="module")
def native_fake() -> Iterator[FakeNative]:
    fake = FakeNative(api_key=UPSTREAM_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def native_gw(
    native_fake: FakeNative, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, UPSTREAM_KEY)
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN)
    folder = tmp_path_factory.mktemp("policies")
    key = create_key(folder, "native")
    SPENDER.append(create_key(folder, "spender"))
    (folder / "teams.yaml").write_text('teams:\n  spender: {budgets: {month: "1.00"}}\n')
    url = native_fake.url
    models = {
        "small-a": model_cfg(url, "fake-small", tier="small", api_key_env=KEY_ENV),
        "gpt-native": model_cfg(url, "fake-gpt", tier="large", api_key_env=KEY_ENV,
                                apis=["chat", "responses"],
                                price={"input_per_mtok": "2", "output_per_mtok": "8"}),
        "claude-native": model_cfg(url, "fake-claude", tier="medium", api_key_env=KEY_ENV,
                                   apis=["messages"],
                                   price={"input_per_mtok": "3", "output_per_mtok": "15"}),
    }  # fmt: skip
    routes = {
        "auto": {"tiers": ["small", "large"], "threshold": 0.0},  # always large
        "cheap": {"tiers": ["small", "large"], "threshold": 1.0},  # always small
        "claude": {"tiers": ["medium"], "threshold": 0.0},
    }
    settings = Settings(models=models, routes=routes, policies_dir=folder)
    try:
        with GatewayServer(settings) as gw:
            yield gw.url, key
    finally:
        mp.undo()


@pytest.fixture
def fake(native_fake: FakeNative) -> Iterator[FakeNative]:
    native_fake.reset()
    yield native_fake
    native_fake.reset()


@pytest.fixture
def oai(native_gw: tuple[str, str], fake: FakeNative) -> Iterator[openai.OpenAI]:
    url, key = native_gw
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def claude(native_gw: tuple[str, str], fake: FakeNative) -> Iterator[anthropic.Anthropic]:
    url, key = native_gw
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    yield client
    client.close()


def _sse_types(raw: bytes) -> list[str]:
    return [orjson.loads(line[6:])["type"] for line in raw.split(b"\n")
            if line.startswith(b"data: ")]  # fmt: skip


# --- OpenAI Responses --------------------------------------------------------------------


def test_responses_pass_through_to_a_native_upstream(oai: openai.OpenAI, fake: FakeNative) -> None:
    raw = oai.responses.with_raw_response.create(
        model="auto", input="Say hello", instructions="Be brief.", max_output_tokens=50,
        reasoning={"effort": "low"}, include=["reasoning.encrypted_content"],
    )  # fmt: skip
    resp = raw.parse()
    assert [s.path for s in fake.seen] == ["/v1/responses"]
    sent = fake.seen[0]
    assert sent.body["model"] == "fake-gpt"
    assert sent.body["input"] == "Say hello" and sent.body["instructions"] == "Be brief."
    assert sent.body["reasoning"] == {"effort": "low"}  # unknown to the bridge, passed as is
    assert sent.body["include"] == ["reasoning.encrypted_content"]
    assert sent.body["max_output_tokens"] == 50
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert fake.requests == []  # no chat completion was made
    assert resp.id.startswith("resp_fake_")  # the upstream's own id
    assert resp.output_text == TEXT
    assert resp.usage is not None and resp.usage.input_tokens_details.cached_tokens == 4
    assert raw.headers["x-frugal-model"] == "gpt-native"
    assert raw.headers["x-frugal-route"] == "auto"
    # 12 input tokens at $2/M, 9 output at $8/M (cached input is priced as input here)
    assert Decimal(raw.headers["x-frugal-cost-usd"]) == Decimal("0.000096")


def test_responses_stream_passes_every_event(
    native_gw: tuple[str, str], oai: openai.OpenAI, fake: FakeNative
) -> None:
    events = list(oai.responses.create(model="auto", input="Say hello", stream=True))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXT
    url, key = native_gw
    with httpx.Client() as h:
        r = h.post(f"{url}/v1/responses", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "auto", "input": "Say hello", "stream": True})  # fmt: skip
    types = _sse_types(r.content)
    assert UNKNOWN_RESPONSES_EVENT in types  # an event no client knows: passed unchanged
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert r.headers["x-frugal-model"] == "gpt-native"


def test_previous_response_id_stays_on_the_model_holding_its_state(
    oai: openai.OpenAI, fake: FakeNative
) -> None:
    first = oai.responses.create(model="auto", input="Remember 'teal'.")
    # `cheap` would pick the small (bridged) model: the state is on gpt-native's upstream.
    raw = oai.responses.with_raw_response.create(
        model="cheap", input="Which word?", previous_response_id=first.id
    )
    assert raw.headers["x-frugal-model"] == "gpt-native"
    assert "state is held by gpt-native" in raw.headers["x-frugal-route-reason"]
    assert fake.seen[-1].body["previous_response_id"] == first.id
    assert fake.seen[-1].body["input"] == "Which word?"  # the upstream has the history
    assert oai.responses.retrieve(first.id).id == first.id  # kept by the gateway too
    streamed = list(oai.responses.create(
        model="cheap", input="And again?", previous_response_id=raw.parse().id, stream=True,
    ))  # fmt: skip
    assert streamed[-1].type == "response.completed"
    assert [s.body["model"] for s in fake.seen] == ["fake-gpt"] * 3


def test_responses_tool_round_trip_passes_through(oai: openai.OpenAI, fake: FakeNative) -> None:
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    first = oai.responses.create(model="auto", input="Look up x", tools=tools)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "lookup"
    assert call.arguments == '{"x": 1}'
    result: Any = [{"type": "function_call_output", "call_id": call.call_id, "output": "42"}]
    second = oai.responses.create(
        model="auto", input=result, tools=tools, previous_response_id=first.id
    )
    assert second.output_text == TEXT
    assert fake.seen[-1].body["input"] == result  # as the client sent it
    assert fake.seen[-1].body["previous_response_id"] == first.id


def test_bridged_model_still_bridges(oai: openai.OpenAI, fake: FakeNative) -> None:
    raw = oai.responses.with_raw_response.create(model="cheap", input="Say hello")
    assert raw.headers["x-frugal-model"] == "small-a"
    assert fake.seen == [] and fake.requests[-1]["model"] == "fake-small"
    assert raw.parse().output_text == TEXT


def test_what_only_a_native_upstream_can_take_is_routed_to_one(
    oai: openai.OpenAI, fake: FakeNative
) -> None:
    """Encrypted reasoning and built-in tools: `cheap` would pick the bridged small model,
    which cannot take them; the route's model that speaks Responses does."""
    items: Any = [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA..."},
        {"role": "user", "content": "Search the web for teal."},
    ]
    raw = oai.responses.with_raw_response.create(
        model="cheap", input=items, tools=[{"type": "web_search"}], store=False
    )
    assert raw.headers["x-frugal-model"] == "gpt-native"
    assert "does not speak the responses API" in raw.headers["x-frugal-route-reason"]
    assert fake.seen[-1].body["input"] == items  # as the client sent it
    assert fake.seen[-1].body["tools"] == [{"type": "web_search"}]
    # Pinned to the bridged model, or on a route without a native model: the bridge's 400.
    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model="small-a", input=items)
    assert "Encrypted reasoning" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        oai.responses.create(model="claude", input=items)
    assert "Encrypted reasoning" in e.value.message and "natively" in e.value.message


# --- Anthropic Messages ------------------------------------------------------------------


def test_messages_tool_round_trip_passes_through(
    claude: anthropic.Anthropic, fake: FakeNative
) -> None:
    tools: Any = [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}]
    ask: Any = {"role": "user", "content": "Look up x"}
    first = claude.messages.create(model="claude", max_tokens=64, tools=tools, messages=[ask])
    use = first.content[0]
    assert first.stop_reason == "tool_use" and use.type == "tool_use" and use.input == {"x": 1}
    turns: Any = [
        ask,
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "42"}]},
    ]  # fmt: skip
    second = claude.messages.create(model="claude", max_tokens=64, tools=tools, messages=turns)
    assert second.content[0].text == TEXT  # type: ignore[union-attr]
    assert fake.seen[-1].body["messages"][2]["content"][0]["type"] == "tool_result"


def test_server_tools_go_to_the_native_upstream(
    claude: anthropic.Anthropic, fake: FakeNative
) -> None:
    tools: Any = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    msg = claude.messages.create(
        model="claude", max_tokens=64, tools=tools,
        messages=[{"role": "user", "content": "Search the web for teal."}],
    )  # fmt: skip
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    assert fake.seen[-1].body["tools"] == tools


def test_messages_pass_through_with_anthropic_headers(
    claude: anthropic.Anthropic, fake: FakeNative
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude", max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )  # fmt: skip
    msg = raw.parse()
    sent = fake.seen[-1]
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "fake-claude" and sent.body["system"] == "Be brief."
    assert sent.body["max_tokens"] == 64
    assert sent.headers["x-api-key"] == UPSTREAM_KEY
    assert "Authorization" not in sent.headers
    assert sent.headers["anthropic-version"] == claude.default_headers["anthropic-version"]
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert msg.content[0].text == TEXT  # type: ignore[union-attr]
    assert msg.usage.cache_read_input_tokens == MESSAGES_USAGE["cache_read_input_tokens"]
    assert raw.headers["x-frugal-model"] == "claude-native"
    # 11 + 5 (cache read) input tokens at $3/M, 9 output at $15/M
    assert Decimal(raw.headers["x-frugal-cost-usd"]) == Decimal("0.000183")


def test_messages_stream_passes_every_event(
    native_gw: tuple[str, str], claude: anthropic.Anthropic, fake: FakeNative
) -> None:
    with claude.messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.usage.output_tokens == MESSAGES_USAGE["output_tokens"]
    url, key = native_gw
    with httpx.Client() as h:
        r = h.post(f"{url}/v1/messages", headers={"x-api-key": key, "anthropic-version": "x"},
                   json={"model": "claude", "max_tokens": 64, "stream": True,
                         "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    types = _sse_types(r.content)
    assert "ping" in types and UNKNOWN_MESSAGES_EVENT in types
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert fake.seen[-1].headers["anthropic-version"] == "x"  # forwarded unchanged


def test_count_tokens_asks_a_native_upstream(claude: anthropic.Anthropic, fake: FakeNative) -> None:
    messages: Any = [{"role": "user", "content": "Say hello"}]
    counted = claude.messages.count_tokens(model="claude-native", messages=messages)
    assert counted.input_tokens == COUNTED
    assert fake.seen[-1].path == "/v1/messages/count_tokens"
    assert fake.seen[-1].headers["x-api-key"] == UPSTREAM_KEY
    assert fake.seen[-1].body["model"] == "fake-claude"
    local = claude.messages.count_tokens(model="small-a", messages=messages)  # bridged: local
    assert 0 < local.input_tokens < 50 and len(fake.seen) == 1


def test_a_messages_only_model_takes_no_chat(oai: openai.OpenAI, fake: FakeNative) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hi"}])
    assert e.value.code == "no_capable_model"
    assert "does not speak the chat API" in e.value.message


def test_passed_through_spend_is_charged_to_the_budget(
    native_gw: tuple[str, str], fake: FakeNative
) -> None:
    """Whole and streamed answers of both APIs: each charged from the upstream's own usage."""
    url, _ = native_gw
    key = SPENDER[0]
    ask = [{"role": "user", "content": "Say hello"}]
    with httpx.Client(base_url=url, timeout=10) as c:
        for stream in (False, True):
            r = c.post("/v1/messages", headers={"x-api-key": key},
                       json={"model": "claude", "max_tokens": 64, "messages": ask,
                             "stream": stream})  # fmt: skip
            assert r.status_code == 200 and r.headers["x-frugal-model"] == "claude-native"
            r = c.post("/v1/responses", headers={"authorization": f"Bearer {key}"},
                       json={"model": "auto", "input": "Say hello", "stream": stream,
                             "store": False})  # fmt: skip
            assert r.status_code == 200 and r.headers["x-frugal-model"] == "gpt-native"
        # Messages: (11 + 5) x $3/M + 9 x $15/M; Responses: 12 x $2/M + 9 x $8/M; twice each
        expected = 2 * (Decimal("0.000183") + Decimal("0.000096"))
        spent = Decimal(0)
        for _ in range(50):  # settles are written shortly after the answer
            rows = c.get("/admin/budgets?team=spender",
                         headers={"authorization": f"Bearer {ADMIN}"})  # fmt: skip
            spent = Decimal(rows.json()["budgets"][0]["spent_usd"])
            if spent >= expected:
                break
            time.sleep(0.05)
    assert spent == expected


# --- the relay's accounting --------------------------------------------------------------


async def _events(items: list[dict[str, Any]]) -> Any:
    for i in items:
        yield i


def _call() -> Call:
    call = Call("rid", Principal("t", "k"), Endpoint.chat, {"messages": []}, Endpoint.messages)
    call.native = {}
    return call


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_relay_reads_anthropic_usage_from_start_and_delta() -> None:
    got: list[Usage] = []
    events = [
        {"type": "message_start", "message": {"usage": {**MESSAGES_USAGE, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    out = [b async for b in relay(_call(), events[0], _events(events[1:]), lambda: 0, got.append)]
    assert len(out) == 4 and out[0].startswith(b"event: message_start\ndata: ")
    assert len(got) == 1
    u = got[0]
    assert (u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.estimated) == (16, 5, 9, False)


@pytest.mark.anyio
async def test_relay_charges_a_stream_cut_short() -> None:
    got: list[Usage] = []
    events = [
        {"type": "message_start", "message": {"usage": {**MESSAGES_USAGE, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hello there"}},
    ]
    gen = relay(_call(), events[0], _events(events[1:] * 3), lambda: 99, got.append)
    await anext(gen)
    await anext(gen)
    await gen.aclose()  # the client left
    assert len(got) == 1 and got[0].estimated
    assert got[0].prompt_tokens == 16 and got[0].completion_tokens >= 2


def test_merge_keeps_each_side_from_its_latest_report() -> None:
    start = Usage(16, 1, cached_tokens=5)
    assert merge(start, Usage(0, 9)) == Usage(16, 9, cached_tokens=5)
    assert merge(None, start) == start


@pytest.mark.redis
def test_native_conversation_continues_on_another_replica(
    native_fake: FakeNative, fake: FakeNative, redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    """Two gateways sharing Redis: a response passed through on one is continued on the other,
    on the model that holds its state."""
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, UPSTREAM_KEY)
    folder = tmp_path_factory.mktemp("policies")
    key = create_key(folder, "native2")
    url = native_fake.url
    models = {
        "small-a": model_cfg(url, "fake-small", tier="small", api_key_env=KEY_ENV),
        "gpt-native": model_cfg(url, "fake-gpt", tier="large", api_key_env=KEY_ENV,
                                apis=["chat", "responses"]),
    }  # fmt: skip
    routes = {"auto": {"tiers": ["small", "large"], "threshold": 0.0},
              "cheap": {"tiers": ["small", "large"], "threshold": 1.0}}  # fmt: skip
    settings = Settings(models=models, routes=routes, policies_dir=folder,
                        redis_url=redis_server.url)  # fmt: skip
    try:
        with GatewayServer(settings) as a, GatewayServer(settings) as b:
            ca = openai.OpenAI(base_url=f"{a.url}/v1", api_key=key, max_retries=0)
            cb = openai.OpenAI(base_url=f"{b.url}/v1", api_key=key, max_retries=0)
            first = ca.responses.create(model="auto", input="Remember 'teal'.")
            raw = cb.responses.with_raw_response.create(
                model="cheap", input="Which word?", previous_response_id=first.id
            )
            assert raw.headers["x-frugal-model"] == "gpt-native"
            assert fake.seen[-1].body["previous_response_id"] == first.id
            assert cb.responses.retrieve(first.id).id == first.id
            ca.close()
            cb.close()
    finally:
        mp.undo()
