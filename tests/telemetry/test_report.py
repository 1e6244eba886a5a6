"""`frugal report`: a team's spend and savings from the budget ledger in Redis, in the terminal
and as a PNG plot, after real requests through a gateway."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from gateway.config import Settings
from gateway.telemetry.report import plot, render, summarize
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer, RedisServer
from tests.telemetry.support import UPSTREAM_KEY_ENV, chat, config, write_policies

ROWS = [
    {"day": "2026-11-01", "key_id": "k", "model": "small-a", "tier": "small", "requests": 3,
     "prompt_tokens": 15, "completion_tokens": 30, "cost_usd": "0.0075", "savings_usd": "0.2625"},
    {"day": "2026-11-02", "key_id": "k", "model": "large-a", "tier": "large", "requests": 1,
     "prompt_tokens": 5, "completion_tokens": 10, "cost_usd": "0.09", "savings_usd": "0"},
]  # fmt: skip


def test_summary_and_text() -> None:
    s = summarize(ROWS)
    assert s.total.requests == 4 and str(s.total.cost) == "0.0975"
    assert str(s.total.baseline) == "0.3600"
    text = render("research", "month", "UTC", s)
    assert "spend      $0.0975" in text
    assert "savings    $0.2625 (72.9% of $0.3600" in text
    assert "2026-11-02           1      $0.0900" in text


def test_png_plot(tmp_path: Path) -> None:
    out = tmp_path / "spend.png"
    plot("research", "month", summarize(ROWS), out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.fixture
def ledger(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:  # fmt: skip
    url = redis_server.url.rsplit("/", 1)[0] + "/13"
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    keys = write_policies(tmp_path / "policies")
    cfg = config(fake_openai.url, policies_dir=str(tmp_path / "policies"), redis_url=url,
                 cache={"enabled": False})  # fmt: skip
    with GatewayServer(Settings(**cfg)) as gw:
        traffic = [("auto", "Say one"), ("auto", "Say two"), ("always-large", "Say hi")]
        for model, content in traffic:
            assert chat(gw.url, keys["research"], model, content=content).status_code == 200
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    yield path


def test_frugal_report_from_the_ledger(ledger: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    frugal = str(Path(sys.executable).parent / "frugal")
    run = subprocess.run([frugal, "report", "--team", "research", "--period", "month",
                          "--config", str(ledger), "--png", str(png)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Frugal report: team research, this month (UTC)" in run.stdout
    assert "requests   3" in run.stdout
    assert "spend      $0.0950" in run.stdout  # 2 x $0.0025 (small) + $0.09 (large)
    assert "savings    $0.1750" in run.stdout  # 2 x ($0.09 - $0.0025)
    assert png.read_bytes()[:4] == b"\x89PNG"
