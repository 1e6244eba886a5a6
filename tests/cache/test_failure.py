"""The cache never fails a request: Redis down, or slower than `timeout_ms`, means the request
proceeds uncached, with a warning and a metric."""

import time
from typing import Any

import httpx
import pytest
import redis

from tests.cache.conftest import ADMIN_KEY, Gateway, cache_gateway
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import RedisServer, free_port


def ask(gw: Gateway, text: str) -> Any:
    return gw.client().chat.completions.with_raw_response.create(
        model="small-a", messages=[{"role": "user", "content": text}], temperature=0
    )


def stats(gw: Gateway) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body: dict[str, Any] = httpx.get(f"{gw.url}/admin/cache/stats", headers=admin).json()
    return body


def test_redis_down_means_uncached_not_failed(
    fake_openai: FakeOpenAI, upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), {}, redis_url=dead) as gw:
        for _ in range(2):
            r = ask(gw, "redis is down")
            assert r.status_code == 200 and r.headers["x-frugal-cache"] == "miss"
        counts = stats(gw)["counts"]
    assert len(upstream.requests) == 2
    assert counts["get_errors"] + counts.get("get_timeouts", 0) >= 2
    assert "cache get failed" in caplog.text and "proceeds uncached" in caplog.text


def test_slow_redis_is_skipped_after_the_timeout(
    fake_openai: FakeOpenAI, upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = RedisServer().start()
    try:
        cache = {"timeout_ms": 100}
        with cache_gateway(fake_openai, tmp_path_factory.mktemp("p"), cache,
                           redis_url=server.url) as gw:  # fmt: skip
            ask(gw, "slow redis")
            assert ask(gw, "slow redis").headers["x-frugal-cache"] == "hit"
            pauser = redis.Redis.from_url(server.url)
            pauser.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # every command waits 3 s
            t0 = time.perf_counter()
            r = ask(gw, "slow redis")
            took = time.perf_counter() - t0
            assert r.status_code == 200 and r.headers["x-frugal-cache"] == "miss"
            counts = stats(gw)["counts"]
            assert counts["get_timeouts"] >= 1
            assert took < 2.5, took  # it did not sit out the 3 s pause
            pauser.close()
    finally:
        server.stop()


def test_warnings_are_rate_limited() -> None:
    import logging

    from gateway.cache.health import Health

    h = Health(0.01)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("frugal.cache")
    log.addHandler(handler)
    try:
        for _ in range(100):
            h.failed("get", "error", "boom")
    finally:
        log.removeHandler(handler)
    assert h.counts["errors"] == 100 and len(records) == 1
