"""The front edge (issue 12, problem 12): a non-ASCII admin key, JSON nested 256 levels, the
admin API in /openapi.json, a body read before authentication and without a deadline. Each was a
500 or a leak before."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from gateway.keys import create_key
from tests.hardening.asgi_support import (
    ADMIN_KEY,
    UPSTREAM_KEY_ENV,
    assert_openai_error,
    serving,
    settings_for,
)
from tests.support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.anyio
MSGS = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env(upstream: FakeOpenAI, tmp_path: Path) -> Iterator[tuple[FakeOpenAI, Path, str]]:
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, upstream.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    key = create_key(tmp_path, "research")
    yield upstream, tmp_path, key
    mp.undo()


ADMIN_GETS = ["/admin/budgets?team=research", "/admin/budget/status", "/admin/cache/stats"]


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_non_ascii_admin_key_is_401(env: tuple[FakeOpenAI, Path, str], path: str) -> None:
    up, policies, _ = env
    async with serving(settings_for(up.url, policies)) as (_, client):
        for raw in ("Bearer é".encode(), "Bearer ключ".encode(), b"Bearer \xff\xfe"):
            resp = await client.get(path, headers={"authorization": raw})
            assert resp.status_code == 401, resp.text
            assert_openai_error(resp)
        ok = await client.get(path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert ok.status_code in (200, 404)  # 404: the team has no policy here


async def test_admin_key_is_checked_before_the_parameters(
    env: tuple[FakeOpenAI, Path, str],
) -> None:
    up, policies, _ = env
    async with serving(settings_for(up.url, policies)) as (_, client):
        anonymous = await client.get("/admin/budgets")  # `team` is missing too
        assert anonymous.status_code == 401
        assert_openai_error(anonymous)
        admin = await client.get("/admin/budgets", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert admin.status_code == 400  # was FastAPI's 422 {"detail": [...]}
        assert_openai_error(admin)
        assert admin.json()["error"]["param"] == "team"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "small-a", "messages": MSGS}),
        ("/v1/completions", {"model": "small-a", "prompt": "Say hello"}),
        ("/v1/embeddings", {"model": "embed-a", "input": "hello"}),
    ],
)
async def test_json_nested_256_levels_is_400(
    env: tuple[FakeOpenAI, Path, str], path: str, body: dict[str, Any]
) -> None:
    up, policies, key = env
    auth = {"authorization": f"Bearer {key}"}
    async with serving(settings_for(up.url, policies)) as (_, client):
        deep = {**body, "vendor_option": _nested(300)}
        raw = orjson.dumps(body)[:-1] + b',"vendor_option":' + b"[" * 300 + b"]" * 300 + b"}"
        for content in (raw, _dump_deep(deep)):
            resp = await client.post(path, content=content, headers=auth)
            assert resp.status_code == 400, resp.text
            assert_openai_error(resp)
            assert "nested" in resp.json()["error"]["message"]
        fine = {**body, "vendor_option": _nested(250)}  # within the limit: served
        resp = await client.post(path, content=_dump_deep(fine), headers=auth)
        assert resp.status_code == 200, resp.text


def _dump_deep(value: Any) -> bytes:
    """orjson cannot write what is nested deeper than 255 levels: build the text by hand."""
    if isinstance(value, dict):
        items = (orjson.dumps(k) + b":" + _dump_deep(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(_dump_deep(v) for v in value) + b"]"
    return orjson.dumps(value)


async def test_openapi_lists_no_admin_route(env: tuple[FakeOpenAI, Path, str]) -> None:
    up, policies, _ = env
    async with serving(settings_for(up.url, policies)) as (_, client):
        resp = await client.get("/openapi.json")
        assert resp.status_code == 200
        paths = set(resp.json()["paths"])
        assert "/v1/models" in paths and "/healthz" in paths
        assert not [p for p in paths if p.startswith("/admin") or p == "/metrics"], paths


class _Exchange:
    """Drive the ASGI app by hand: the body arrives as the test says, or never."""

    def __init__(self, path: str, headers: dict[str, str], parts: list[bytes]) -> None:
        self.scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }  # fmt: skip
        self.parts = list(parts)
        self.status: int | None = None
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        if self.parts:
            return {"type": "http.request", "body": self.parts.pop(0), "more_body": True}
        await anyio.sleep_forever()  # a client that stops sending in the middle of its body
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def test_the_key_is_checked_before_the_body_is_read(
    env: tuple[FakeOpenAI, Path, str],
) -> None:
    """A caller without a valid key gets 401 at once, even while its body has not arrived."""
    up, policies, _ = env
    async with serving(settings_for(up.url, policies)) as (front, _):
        for headers in ({}, {"authorization": "Bearer sk-wrong"}):
            ex = _Exchange("/v1/chat/completions", {"content-length": "1000", **headers}, [b"{"])
            with anyio.fail_after(5):
                await front(ex.scope, ex.receive, ex.send)
            assert ex.status == 401
            assert_openai_error(httpx.Response(401, content=ex.body))


async def test_a_body_that_does_not_arrive_in_time_is_408(
    env: tuple[FakeOpenAI, Path, str],
) -> None:
    up, policies, key = env
    settings = settings_for(up.url, policies, server={"body_timeout_s": 0.3})
    async with serving(settings) as (front, _):
        headers = {"authorization": f"Bearer {key}", "content-length": "100000"}
        ex = _Exchange("/v1/chat/completions", headers, [b'{"model": "small-a", ', b" " * 10])
        with anyio.fail_after(5):
            await front(ex.scope, ex.receive, ex.send)
        assert ex.status == 408
        resp = httpx.Response(408, content=ex.body)
        assert_openai_error(resp)
        assert resp.json()["error"]["code"] == "request_timeout"
        assert up.requests == []  # nothing was sent upstream
