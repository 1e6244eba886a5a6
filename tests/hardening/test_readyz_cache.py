"""`/readyz` probes each upstream (with its real key) at most once per `server.readyz_cache_s`,
one probe round at a time, however many probes arrive at once (issue 12, problem 12)."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from tests.conftest import model_cfg
from tests.support.servers import GatewayServer

FREE = {"input_per_mtok": "0", "output_per_mtok": "0"}


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.probes: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Upstream

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.probes.append(self.headers.get("authorization", ""))
        time.sleep(0.1)  # a slow probe: concurrent /readyz calls overlap it
        body = b'{"object": "list", "data": []}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _settings(tmp_path: Path, url: str, **server: float) -> Settings:
    models = {
        name: model_cfg(url, name, price=FREE, api_key_env="READYZ_UP_KEY") for name in ("a", "b")
    }
    return Settings(models=models, policies_dir=tmp_path, server=server)


@pytest.fixture(autouse=True)
def _upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READYZ_UP_KEY", "sk-real-upstream-key")


def test_many_readyz_probes_at_once_probe_each_upstream_once(
    tmp_path: Path, upstream: Upstream
) -> None:
    with (
        GatewayServer(_settings(tmp_path, upstream.url)) as gw,  # the default period: 10 s
        httpx.Client(base_url=gw.url, timeout=10) as c,
        ThreadPoolExecutor(16) as pool,
    ):
        answers = list(pool.map(lambda _: c.get("/readyz"), range(32)))
        assert {r.status_code for r in answers} == {200}
        assert all(r.json()["upstreams"] == {"a": "ok", "b": "ok"} for r in answers)
        for _ in range(5):
            assert c.get("/readyz").status_code == 200
    assert len(upstream.probes) == 2  # 37 calls of /readyz, one round: one probe per upstream
    assert set(upstream.probes) == {"Bearer sk-real-upstream-key"}


def test_the_probe_is_repeated_once_the_period_ends(tmp_path: Path, upstream: Upstream) -> None:
    with (
        GatewayServer(_settings(tmp_path, upstream.url, readyz_cache_s=0.5)) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as c,
    ):
        assert c.get("/readyz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert len(upstream.probes) == 2
        time.sleep(0.6)
        assert c.get("/readyz").status_code == 200
        assert len(upstream.probes) == 4  # the period ended: probed again, once each
