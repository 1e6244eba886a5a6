"""A real Prometheus (Debian's `prometheus` package) on a free loopback port, scraping one
target every second with the admin key; stopped by its PID. Missing binary: a loud failure
naming the install command, never a skip."""

import json
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.servers import Process, free_port

INSTALL = "apt-get update && apt-get install -y --no-install-recommends prometheus"


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        raise RuntimeError(f"the prometheus binary is missing: install it with `{INSTALL}` "
                           "(scripts/setup --dev does)")  # fmt: skip
    return found


class Prometheus:
    def __init__(self, target: str, bearer: str, interval_s: int = 1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="frugal-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {
            "global": {"scrape_interval": f"{interval_s}s", "evaluation_interval": "15s"},
            "scrape_configs": [{
                "job_name": "frugal", "metrics_path": "/metrics", "scrape_timeout": "1s",
                "authorization": {"type": "Bearer", "credentials": bearer},
                "static_configs": [{"targets": [target]}],
            }],
        }  # fmt: skip
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.process = Process([
            prometheus_binary(), f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ])  # fmt: skip

    def wait_ready(self, timeout_s: float = 60) -> "Prometheus":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.process.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready:\n{self.process.output()}")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; raises on a PromQL error."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise AssertionError(f"PromQL error for {expr!r}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_scrapes(self, n: int, timeout_s: float = 30) -> float:
        """Wait until `n` more successful scrapes happened; returns the last one's time."""
        start = self.last_scrape()
        seen = [start]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            t = self.last_scrape()
            if t != seen[-1]:
                seen.append(t)
                if len(seen) > n:
                    return t
            time.sleep(0.2)
        raise TimeoutError(f"prometheus did not scrape {n} times:\n{self.process.output()}")

    def last_scrape(self) -> float:
        """The time of the last successful scrape (0 before the first)."""
        up = self.query('up{job="frugal"}')
        if not up or up[0]["value"][1] != "1":
            return 0.0
        r = self.query('timestamp(up{job="frugal"})')  # the sample's own time
        return float(r[0]["value"][1])

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
