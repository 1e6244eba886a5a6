"""SIGHUP reloads the policies of a running `frugal serve` process; an invalid new file is
refused with a clear log line and the previous policies stay in force."""

import os
import signal
import sys
import time
from pathlib import Path

import httpx

from gateway.keys import create_key
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import Process, free_port, wait_port

ALLOW = "teams:\n  t:\n    allow: {{models: [{model}]}}\n"


def _config(tmp: Path, upstream: str, port: int) -> Path:
    cfg = tmp / "frugal.yaml"
    cfg.write_text(f"""
server: {{port: {port}}}
policies_dir: policies
budget: {{reload_interval_s: 0}}
models:
  small-a: {{model: fake-small, base_url: "{upstream}", tier: small, api_key_env: UP_KEY,
             price: {{input_per_mtok: 1, output_per_mtok: 2}}}}
  large-a: {{model: fake-large, base_url: "{upstream}", tier: large, api_key_env: UP_KEY,
             price: {{input_per_mtok: 10, output_per_mtok: 20}}}}
""")
    return cfg


def _status(c: httpx.Client, key: str) -> int:
    body = {"model": "large-a", "messages": [{"role": "user", "content": "hi"}]}
    return c.post("/v1/chat/completions", json=body,
                  headers={"authorization": f"Bearer {key}"}).status_code  # fmt: skip


def _until(check: object, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_sighup_reloads_and_refuses_an_invalid_file(tmp_path: Path, upstream: FakeOpenAI) -> None:
    policies = tmp_path / "policies"
    key = create_key(policies, "t")
    (policies / "teams.yaml").write_text(ALLOW.format(model="small-a"))
    port = free_port()
    env = {**os.environ, "UP_KEY": upstream.api_key or ""}
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--no-local",
           "--config", str(_config(tmp_path, upstream.url, port))]  # fmt: skip
    proc = Process(cmd, env=env)
    try:
        wait_port(port, 60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert _status(c, key) == 403
            (policies / "teams.yaml").write_text(ALLOW.format(model="large-a"))
            proc.proc.send_signal(signal.SIGHUP)
            assert _until(lambda: _status(c, key) == 200)
            (policies / "teams.yaml").write_text(ALLOW.format(model="large-a") + "    oops: 1\n")
            proc.proc.send_signal(signal.SIGHUP)
            assert _until(lambda: "policy reload refused" in proc.output())
            assert "oops" in proc.output()
            assert _status(c, key) == 200  # the previous policies stay in force
            assert proc.proc.poll() is None  # and the gateway is still serving
    finally:
        proc.stop()
