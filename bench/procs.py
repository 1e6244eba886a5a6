"""Process plumbing shared by the benchmark scripts: free ports, waiting for a port, child
processes stopped by their PID, per-process CPU time from /proc, and a fast event loop."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (as uvicorn does), else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: "Child", timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early; log: {proc.log_path}\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{proc.name}: nothing listening on 127.0.0.1:{port} after {timeout_s}s")


class Child:
    """A child process in its own session (Ctrl-C reaches only the parent, which stops it by
    PID: SIGTERM, then SIGKILL after a grace period). Output goes to a log file, never a pipe."""

    def __init__(
        self, name: str, cmd: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def maps(self) -> str:
        try:
            return Path(f"/proc/{self.pid}/maps").read_text()
        except OSError:
            return ""

    def tail(self, n: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`; then any of its descendants (workers) still
        alive, each by its PID."""
        left = [p for p in descendants(self.pid) if p != self.pid] if self.alive() else []
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self._log.close()


def wait_http(url: str, child: Child, timeout_s: float = 120.0) -> None:
    """Until GET `url` answers 200 (the child must stay alive meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited; log {child.log_path}:\n{child.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{child.name}: {url} not answering after {timeout_s}s:\n{child.tail()}")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants."""
    total = 0.0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def tree_rss_mb(pid: int) -> list[float]:
    """Resident memory (VmRSS) of `pid` and each of its descendants, in MB."""
    out = []
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return out


def python() -> str:
    return sys.executable
