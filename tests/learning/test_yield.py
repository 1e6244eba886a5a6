"""Paired sampling yields to client requests (issue 14: "adds nothing to the client's latency"):
a sampled job starts, and goes on between its calls, only while no client request is in flight
on the worker; meanwhile jobs wait in the bounded queue, and one that does not fit is dropped,
counted and logged. A client request is held in flight by sending its body in two parts."""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.keys import create_key
from gateway.learning.judge import RUBRIC
from gateway.learning.sampling import Learning
from tests.conftest import model_cfg
from tests.hardening.asgi_support import UPSTREAM_KEY_ENV, serving
from tests.support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[tuple[FakeOpenAI, Settings, str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    key = create_key(tmp_path, "team-a")

    def model(upstream_id: str, tier: str) -> dict[str, Any]:
        return model_cfg(upstream.url, upstream_id, tier=tier, api_key_env=UPSTREAM_KEY_ENV,
                         price={"input_per_mtok": "1.00", "output_per_mtok": "2.00"})  # fmt: skip

    models = {"small-a": model("fake-small", "small"), "large-a": model("fake-large", "large"),
              "judge-a": model("fake-judge", "large")}  # fmt: skip
    learning = {"sample_share": 1.0, "judge": "judge-a", "queue_max": 1, "workers": 1,
                "feedback": False}  # fmt: skip
    route = {"tiers": ["small", "large"], "router": "heuristic", "learning": learning}
    settings = Settings(
        models=models,
        routes={"learn": route},
        policies_dir=tmp_path,
        resilience={"retries": 0, "backoff_s": 0.01, "cooldown_s": 1},
    )
    yield upstream, settings, key
    mp.undo()


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.01)


def hold(client: httpx.AsyncClient, key: str, release: asyncio.Event) -> "asyncio.Task[Any]":
    """A client request to a pinned model (never sampled) that stays in flight until `release`:
    its body's second half is sent only then."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"model": "small-a", "messages": [{"role": "user", '
        await release.wait()
        yield b'"content": "held"}]}'

    auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return asyncio.create_task(client.post(CHAT, content=body(), headers=auth))


async def ask(client: httpx.AsyncClient, key: str, prompt: str) -> str:
    body = {"model": "learn", "messages": [{"role": "user", "content": prompt}]}
    r = await client.post(CHAT, json=body, headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def judged(up: FakeOpenAI) -> int:
    return sum(1 for b in up.requests if b["messages"][0].get("content") == RUBRIC)


async def test_sampled_jobs_wait_for_the_clients_and_a_full_queue_drops(
    env: tuple[FakeOpenAI, Settings, str], caplog: pytest.LogCaptureFixture
) -> None:
    up, settings, key = env
    async with serving(settings) as (front, client):
        learning: Learning = front.app.state.rt.learning
        release = asyncio.Event()
        held = hold(client, key, release)
        await until(lambda: learning.clients.count == 1)
        # three sampled answers while the held request is in flight: the worker takes the
        # first job and waits, the second waits in the queue (queue_max 1), the third is dropped
        ids = [await ask(client, key, p) for p in ("one", "two", "three")]
        await asyncio.sleep(0.3)  # a worker that did not wait would have asked by now
        assert len(up.requests) == 3  # only the clients' own calls reached the upstream
        assert (learning.running, learning.queue.qsize()) == (1, 1)
        assert learning.counts["dropped"] == 1
        assert "learning queue full (1): dropped 1 jobs so far" in caplog.text
        assert await learning.budget.spent("learn") == 0  # nothing held while waiting
        assert await learning.labels.all(route="learn") == []

        release.set()
        assert (await held).status_code == 200
        await learning.drain()
        labels = await learning.labels.all(route="learn")
        assert sorted(x["request_id"] for x in labels) == sorted(ids[:2])
        assert len(up.requests) == 4 + 2 * 3  # the clients' 4, then 3 calls per kept job
        assert await learning.budget.spent("learn") > 0
        assert learning.counts["dropped"] == 1


async def test_a_job_pauses_between_its_calls_while_a_client_request_is_in_flight(
    env: tuple[FakeOpenAI, Settings, str],
) -> None:
    up, settings, key = env
    asked, go_on = threading.Event(), threading.Event()
    seen: list[str] = []

    def reply(body: dict[str, Any]) -> str:  # runs in the fake upstream's thread
        text = body["messages"][-1]["content"]
        if body["messages"][0].get("content") == RUBRIC:
            return "Both are fine. [[C]]"
        seen.append(text)
        if seen.count("one") == 2:  # the label loop asks the other tier
            asked.set()
            go_on.wait(10)  # until the test has a client request in flight
        return f"answer to {text}"

    up.script.reply = reply
    async with serving(settings) as (front, client):
        learning: Learning = front.app.state.rt.learning
        rid = await ask(client, key, "one")
        await until(asked.is_set)
        release = asyncio.Event()
        held = hold(client, key, release)
        await until(lambda: learning.clients.count == 1)
        go_on.set()  # the other tier answers while the client request is in flight
        await asyncio.sleep(0.3)
        assert judged(up) == 0  # the job waits: no judge call ...
        assert learning.running == 1
        assert await learning.labels.all(route="learn") == []  # ... and no label yet
        release.set()
        assert (await held).status_code == 200
        await learning.drain()
        assert judged(up) == 2  # both orders, once the client request was done
        (label,) = await learning.labels.all(route="learn")
        assert label["request_id"] == rid and label["verdict"] == "tie"
