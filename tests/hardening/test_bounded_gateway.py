"""The whole `auto` request with a 4 MB adversarial body, through a real gateway process
(issue 12, problem 1 and "time-bounded inputs"): it costs the gateway under a second of CPU
(routing, token counting, cache key, upstream call together, measured from /proc), and /healthz
keeps answering while it is in flight. Before, 200 KB of dots froze the gateway for minutes."""

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from gateway.keys import create_key
from tests.hardening.bounded_support import CPU_LIMIT_S, chat_bodies
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import Process, free_port, wait_port

UPSTREAM_KEY_ENV = "FRUGAL_TEST_UPSTREAM_KEY"
HEALTHZ_LIMIT_S = 1.0  # generous: the machine is shared; a frozen loop takes minutes
POLICY = {"teams": {"research": {"budgets": {"day": "100000.00"}}}}  # so tokens are counted


def _config(tmp: Path, upstream: str) -> Path:
    price = {"input_per_mtok": "0.10", "output_per_mtok": "0.20"}
    models = {
        name: {"provider": "openai", "model": f"fake-{name}", "base_url": upstream, "tier": tier,
               "api_key_env": UPSTREAM_KEY_ENV, "price": price}
        for name, tier in (("small-a", "small"), ("large-a", "large"))
    }  # fmt: skip
    cfg: dict[str, Any] = {
        "auth": {"anonymous_team": None}, "policies_dir": str(tmp), "models": models,
        "routes": {"auto": {"tiers": ["small", "large"], "threshold": 0.5, "router": "default"}},
        "server": {"max_body_bytes": 16 * 1024 * 1024}, "resilience": {"retries": 0},
    }  # fmt: skip
    (tmp / "teams.yaml").write_text(yaml.safe_dump(POLICY))
    path = tmp.parent / f"{tmp.name}-frugal.yaml"  # not in policies_dir: that holds policies
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, int]]:
    tmp = tmp_path_factory.mktemp("bounded-gateway")
    key = create_key(tmp, "research")
    cfg = _config(tmp, fake_openai.url)
    port = free_port()
    env = {**os.environ, UPSTREAM_KEY_ENV: fake_openai.api_key or "", "FRUGAL_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--no-local", "--config", str(cfg),
           "--port", str(port)]  # fmt: skip
    proc = Process(cmd, env=env)
    try:
        try:
            wait_port(port, 60)
        except TimeoutError:
            raise RuntimeError(proc.output()) from None
        url = f"http://127.0.0.1:{port}"
        warm = {"model": "auto", "messages": [{"role": "user", "content": "warm up"}]}
        httpx.post(f"{url}/v1/chat/completions", json=warm, timeout=60,
                   headers={"authorization": f"Bearer {key}"})  # fmt: skip
        yield url, key, proc.proc.pid
    finally:
        proc.stop()


def _cpu_s(pid: int) -> float:
    """User + system CPU of a process and all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bodies() -> Iterator[Any]:
    for name, messages in chat_bodies():
        yield pytest.param("/v1/chat/completions", {"messages": messages}, id=f"chat-{name}")
    prompt = [m["content"] for m in next(iter(chat_bodies()))[1]]
    yield pytest.param("/v1/completions", {"prompt": prompt}, id="completions-dots")


@pytest.mark.parametrize(("path", "fields"), list(_bodies()))
def test_a_4mb_auto_request_is_bounded_and_healthz_stays_prompt(
    gateway: tuple[str, str, int], path: str, fields: dict[str, Any]
) -> None:
    url, key, pid = gateway
    raw = orjson.dumps({"model": "auto", "max_tokens": 16, **fields})
    assert len(raw) > 4_000_000
    result: dict[str, Any] = {}

    def send() -> None:
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        result["resp"] = httpx.post(f"{url}{path}", content=raw, headers=headers, timeout=120)

    with httpx.Client(base_url=url, timeout=30) as probe:
        cpu_before = _cpu_s(pid)
        sender = threading.Thread(target=send)
        sender.start()
        slowest = 0.0
        while sender.is_alive():
            t0 = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.02)
        sender.join()
        cpu = _cpu_s(pid) - cpu_before
    resp: httpx.Response = result["resp"]
    print(f"\n{path} {len(raw)} bytes: {cpu:.2f} s of CPU, slowest /healthz {slowest:.3f} s")
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["x-frugal-route"] == "auto"
    assert slowest < HEALTHZ_LIMIT_S, f"/healthz took {slowest:.2f} s during the request"
    assert cpu < CPU_LIMIT_S, f"the request cost the gateway {cpu:.2f} s of CPU"
