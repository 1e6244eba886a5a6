"""Fuzz the label loop's endpoints (POST /v1/feedback, /admin/router/*, /admin/learning*) with
hypothesis, in-process: never a 500 or a traceback, every error in the OpenAI shape."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.keys import create_key
from tests.hardening.asgi_support import (
    ADMIN_KEY,
    UPSTREAM_KEY_ENV,
    assert_openai_error,
    serving,
    settings_for,
)
from tests.support.fake_openai import FakeOpenAI

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCALAR = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = {
    "/v1/feedback": {"request_id": st.text(max_size=30), "score": st.floats(-1, 2),
                     "thumbs": st.sampled_from(["up", "down", "sideways"]), "comment": JSON},
    "/admin/router/shadow": {"route": st.sampled_from(["auto", "nope", ""]),
                             "router": st.sampled_from(["heuristic", "nope", "../x.json", ""]),
                             "threshold": st.floats(-1, 2), "force": JSON},
    "/admin/router/promote": {"route": st.sampled_from(["auto", "nope"]),
                              "router": st.sampled_from(["heuristic", "nope", ""]),
                              "threshold": st.floats(-1, 2), "force": st.booleans()},
    "/admin/router/rollback": {"route": st.sampled_from(["auto", "nope"]), "x": JSON},
}  # fmt: skip


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BlockingPortal, httpx.AsyncClient, str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    policies = tmp_path_factory.mktemp("fuzz-learning")
    key = create_key(policies, "research")
    fake_openai.reset()
    routes = {"auto": {"tiers": ["small", "large"], "router": "heuristic",
                       "learning": {"sample_share": 1.0, "judge": "large-a"}}}  # fmt: skip
    app = serving(settings_for(fake_openai.url, policies, routes=routes))
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(app) as (
            _,
            client,
        ),
    ):
        yield portal, client, key
    fake_openai.reset()
    mp.undo()


def body_for(path: str) -> st.SearchStrategy[bytes]:
    fields = FIELDS[path]
    near = st.fixed_dictionaries({}, optional={k: v | JSON for k, v in fields.items()})
    return (near.map(json.dumps) | JSON.map(json.dumps) | st.text(max_size=40)).map(
        lambda s: s.encode()
    ) | st.binary(max_size=40)


@pytest.mark.parametrize("path", sorted(FIELDS))
def test_fuzz_learning_endpoints(
    gateway: tuple[BlockingPortal, httpx.AsyncClient, str], path: str
) -> None:
    portal, client, key = gateway
    seen: list[int] = []

    @FUZZ
    @given(body=body_for(path), who=st.sampled_from(["admin", "key", None]))
    def run(body: bytes, who: str | None) -> None:
        headers = {"content-type": "application/json"}
        auth = {"admin": ADMIN_KEY, "key": key, None: None}[who]
        if auth:
            headers["authorization"] = f"Bearer {auth}"

        async def go() -> httpx.Response:
            return await client.post(path, content=body, headers=headers)

        resp: Any = portal.call(go)
        seen.append(resp.status_code)
        assert resp.status_code != 500, resp.text[:300]
        if resp.status_code >= 400:
            assert_openai_error(resp)

    run()
    assert len(seen) > 50
