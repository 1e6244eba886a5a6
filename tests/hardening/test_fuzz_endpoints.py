"""Fuzz every endpoint's JSON with hypothesis, in-process against the ASGI app and the fake
upstream (issue 12): never a 500, never a traceback in a body, every 4xx and 5xx in the OpenAI
error shape. Bodies are near-valid requests with fields swapped for arbitrary JSON, arbitrary
JSON, and arbitrary bytes; admin endpoints get arbitrary query strings and path segments.

Each test runs up to FUZZ_EXAMPLES cases (300 by default; set FRUGAL_FUZZ_EXAMPLES to run more)
and the number run is printed (`pytest -s`) and kept in `CASES` (README, "Hardening")."""

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.front import HOT
from gateway.keys import create_key
from tests.hardening.asgi_support import (
    ADMIN_KEY,
    UPSTREAM_KEY_ENV,
    assert_openai_error,
    serving,
    settings_for,
)
from tests.support.fake_openai import FakeOpenAI

FUZZ_EXAMPLES = int(os.environ.get("FRUGAL_FUZZ_EXAMPLES", "300"))
CASES: dict[str, int] = {}
STATUSES: Counter[int] = Counter()
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Gateway:
    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient, key: str) -> None:
        self.portal, self.client, self.key = portal, client, key

    def request(self, method: str, url: str, auth: str | None, content: bytes | None = None
                ) -> httpx.Response:  # fmt: skip
        headers = {"content-type": "application/json"}
        if auth is not None:
            headers["authorization"] = f"Bearer {auth}"

        async def go() -> httpx.Response:
            return await self.client.request(method, url, content=content, headers=headers)

        return self.portal.call(go)


@pytest.fixture(scope="module")
def gateway(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    policies = tmp_path_factory.mktemp("fuzz-policies")
    key = create_key(policies, "research")
    fake_openai.reset()
    app = serving(settings_for(fake_openai.url, policies))
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(app) as (
            _,
            client,
        ),
    ):
        yield Gateway(portal, client, key)
    fake_openai.reset()
    mp.undo()
    print("\nfuzz cases run:", CASES, "total", sum(CASES.values()))
    print("statuses:", dict(sorted(STATUSES.items())))


def check(resp: httpx.Response, path: str = "") -> None:
    STATUSES[resp.status_code] += 1
    assert resp.status_code != 500, resp.text[:500]
    assert "Traceback" not in resp.text and 'File "/' not in resp.text, resp.text[:500]
    if resp.status_code < 400:
        return
    if path.startswith("/v1/messages"):  # the Anthropic API answers in its own error shape
        body = resp.json()
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    else:
        assert_openai_error(resp)


# Arbitrary JSON, small: the leaves and containers a client can send.
LEAF = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
)  # fmt: skip
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
MODEL = st.sampled_from(["small-a", "large-a", "auto", "embed-a", "nope", ""]) | JSON
ROLE = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]) | JSON
RUNS = st.sampled_from([(".", 5000), ("\n", 3000), ("7", 4000), ("é", 999), ("A) ", 500)])
TEXT = st.text(max_size=200) | RUNS.map(lambda r: r[0] * r[1])
PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]) | JSON},
                             optional={"text": TEXT | JSON, "image_url": JSON})  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE},
    optional={"content": TEXT | st.lists(PART, max_size=3) | JSON, "tool_calls": JSON,
              "name": JSON, "tool_call_id": JSON},
)  # fmt: skip
COMMON = {
    "stream": st.booleans() | JSON, "max_tokens": st.integers(-5, 10**7) | JSON,
    "temperature": st.floats(-1, 3) | JSON, "top_p": JSON, "n": st.integers(-1, 200) | JSON,
    "stop": TEXT | st.lists(TEXT, max_size=3) | JSON, "seed": JSON, "user": JSON,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON}) | JSON,
    "logit_bias": JSON, "presence_penalty": JSON, "metadata": JSON, "api_base": JSON,
}  # fmt: skip
CHAT = st.fixed_dictionaries(
    {"model": MODEL, "messages": st.lists(MESSAGE, max_size=4) | JSON},
    optional={**COMMON, "tools": JSON, "tool_choice": JSON, "response_format": JSON,
              "logprobs": JSON, "top_logprobs": JSON, "max_completion_tokens": JSON},
)  # fmt: skip
COMPLETION = st.fixed_dictionaries(
    {"model": MODEL, "prompt": TEXT | st.lists(TEXT, max_size=3) | JSON},
    optional={**COMMON, "echo": JSON, "logprobs": JSON, "suffix": JSON},
)
EMBEDDING = st.fixed_dictionaries(
    {"model": MODEL, "input": TEXT | st.lists(TEXT, max_size=3) | JSON},
    optional={"encoding_format": JSON, "dimensions": JSON, "user": JSON},
)
MESSAGES_API = st.fixed_dictionaries(  # Anthropic Messages, where the gateway serves it
    {"model": MODEL, "messages": st.lists(MESSAGE, max_size=3) | JSON,
     "max_tokens": st.integers(-5, 10**6) | JSON},
    optional={"system": TEXT | JSON, "stream": JSON, "tools": JSON, "stop_sequences": JSON},
)  # fmt: skip
RESPONSES_API = st.fixed_dictionaries(  # OpenAI Responses, where the gateway serves it
    {"model": MODEL, "input": TEXT | st.lists(MESSAGE, max_size=3) | JSON},
    optional={"instructions": TEXT | JSON, "stream": JSON, "store": JSON,
              "previous_response_id": JSON, "max_output_tokens": JSON, "tools": JSON},
)  # fmt: skip
SHAPES = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETION,
    "/v1/embeddings": EMBEDDING,
    "/v1/messages": MESSAGES_API,
    "/v1/messages/count_tokens": MESSAGES_API,
    "/v1/responses": RESPONSES_API,
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # (orjson cannot write integers beyond 64 bits)


def _body(path: str) -> st.SearchStrategy[bytes]:
    shaped = SHAPES.get(path, CHAT | RESPONSES_API)
    return (
        shaped.map(_dumps)
        | JSON.map(_dumps)
        | st.binary(max_size=200)
        | st.sampled_from([b"", b"{", b"[]", b"null", b'{"model": 1e999}', b'"\\ud800"'])
    )


@pytest.mark.parametrize("path", sorted(HOT))
def test_fuzz_generation_endpoint(gateway: Gateway, path: str) -> None:
    CASES[path] = 0

    @FUZZ
    @given(body=_body(path), keyed=st.booleans())
    def run(body: bytes, keyed: bool) -> None:
        CASES[path] += 1
        check(gateway.request("POST", path, gateway.key if keyed else "sk-wrong", body), path)

    run()
    assert CASES[path] > 0


QUERY = st.dictionaries(
    st.sampled_from(["team", "key_id", "period", "format", "x"]) | st.text(max_size=8),
    st.sampled_from(["research", "month", "day", "csv", "json", ""]) | st.text(max_size=30),
    max_size=4,
)
SEGMENT = st.sampled_from(["research", "", "..", "%00"]) | st.text(min_size=1, max_size=30)
ADMIN = [
    ("GET", "/admin/spend"), ("GET", "/admin/budgets"), ("GET", "/admin/budget/status"),
    ("POST", "/admin/policies/reload"), ("DELETE", "/admin/cache/teams/{}"),
    ("DELETE", "/admin/cache/shared"), ("GET", "/admin/cache/stats"), ("GET", "/metrics"),
    ("GET", "/v1/models"), ("GET", "/v1/responses/{}"), ("DELETE", "/v1/responses/{}"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "route"), ADMIN, ids=[f"{m} {r}" for m, r in ADMIN])
def test_fuzz_admin_and_other_endpoints(gateway: Gateway, method: str, route: str) -> None:
    name = f"{method} {route}"
    CASES[name] = 0

    @FUZZ
    @given(query=QUERY, segment=SEGMENT, body=_body(route), who=st.sampled_from(["admin", "key"]))
    def run(query: dict[str, str], segment: str, body: bytes, who: str) -> None:
        CASES[name] += 1
        url = route.format(quote(segment, safe="")) + ("?" + urlencode(query) if query else "")
        auth = ADMIN_KEY if who == "admin" else gateway.key
        check(gateway.request(method, url, auth, body if method == "POST" else None))

    run()
    assert CASES[name] > 0


def test_fuzz_counts_are_recorded() -> None:
    """Runs last in this module: the figures for the README."""
    assert all(n > 0 for n in CASES.values())
