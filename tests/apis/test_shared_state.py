"""`previous_response_id` across two gateway instances sharing a real Redis: a conversation
started on one replica continues on the other, whose stored responses it can read and delete;
entries expire (a TTL is set) and are keyed by team."""

from collections.abc import Iterator

import openai
import pytest
import redis

from gateway.apis import response_store
from gateway.keys import create_key
from tests.apis.conftest import ToolStreamingFake
from tests.support.servers import GatewayServer, RedisServer
from tests.test_gateway_openai import UPSTREAM_KEY_ENV, settings_for

TEXT = "Frugal routes each prompt to the cheapest good model."


@pytest.fixture(scope="module")
def replicas(
    tool_fake: ToolStreamingFake,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[openai.OpenAI, openai.OpenAI]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, tool_fake.api_key or "")
    folder = tmp_path_factory.mktemp("policies")
    key = create_key(folder, "gamma")
    settings = settings_for(tool_fake.url, folder, redis_url=redis_server.url)
    try:
        with GatewayServer(settings) as a, GatewayServer(settings) as b:
            clients = [
                openai.OpenAI(base_url=f"{g.url}/v1", api_key=key, max_retries=0) for g in (a, b)
            ]
            yield clients[0], clients[1]
            for c in clients:
                c.close()
    finally:
        mp.undo()


@pytest.mark.redis
def test_conversation_continues_on_another_replica(
    replicas: tuple[openai.OpenAI, openai.OpenAI],
    fake: ToolStreamingFake,
    redis_server: RedisServer,
) -> None:
    a, b = replicas
    first = a.responses.create(model="small-a", input="Remember the word 'teal'.")
    events = list(
        b.responses.create(
            model="small-a", previous_response_id=first.id, input="Which word?", stream=True
        )
    )
    assert events[-1].type == "response.completed"
    assert fake.requests[-1]["messages"] == [
        {"role": "user", "content": "Remember the word 'teal'."},
        {"role": "assistant", "content": TEXT},
        {"role": "user", "content": "Which word?"},
    ]
    second = events[-1].response
    assert a.responses.retrieve(second.id).previous_response_id == first.id

    r = redis.Redis.from_url(redis_server.url)
    try:
        ttl = r.ttl(response_store.key("gamma", first.id))
    finally:
        r.close()
    assert 0 < ttl <= response_store.TTL_S

    b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError):
        a.responses.create(model="small-a", previous_response_id=first.id, input="Again")
