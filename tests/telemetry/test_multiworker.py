"""A real `frugal serve --workers 2` (a subprocess, sharing a real Redis): whichever worker
answers a scrape, /metrics shows the requests that every worker served."""

import json
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client.mmap_dict import MmapedDict

from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import RedisServer
from tests.telemetry.support import (
    ADMIN_KEY,
    SMALL,
    UPSTREAM_KEY_ENV,
    chat,
    config,
    scrape,
    serve,
    write_policies,
)
from tests.telemetry.test_metrics_endpoint import value

BATCH = 24


def served_by_pid(folder: Path) -> dict[int, float]:
    """Requests counted in each worker's own value file."""
    out: dict[int, float] = defaultdict(float)
    for f in folder.glob("counter_*.db"):
        pid = int(f.stem.split("_")[1])
        for key, val, _ts, _pos in MmapedDict.read_all_values_from_file(str(f)):
            if json.loads(key)[1] == "frugal_requests_total":
                out[pid] += val
    return dict(out)


@pytest.fixture
def two_workers(
    fake_openai: FakeOpenAI, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str], Path]]:
    url = redis_server.url.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(url).flushdb()
    keys = write_policies(tmp_path / "policies")
    cfg = config(fake_openai.url, policies_dir=str(tmp_path / "policies"), redis_url=url,
                 cache={"enabled": False})  # fmt: skip
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(cfg))
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {UPSTREAM_KEY_ENV: fake_openai.api_key or "", "FRUGAL_ADMIN_KEY": ADMIN_KEY,
           "PROMETHEUS_MULTIPROC_DIR": str(metrics)}  # fmt: skip
    proc, base = serve(path, workers=2, env=env)
    try:
        yield base, keys, metrics
    finally:
        proc.stop()


def test_every_scrape_sees_every_worker(two_workers: tuple[str, dict[str, str], Path]) -> None:
    url, keys, metrics = two_workers
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):  # bounded: until both workers have served some requests
            codes = list(pool.map(lambda _: chat(url, keys["research"], "auto").status_code,
                                  range(BATCH)))  # fmt: skip
            assert codes == [200] * BATCH
            sent += BATCH
            if len([n for n in served_by_pid(metrics).values() if n > 0]) >= 2:
                break
    per_worker = served_by_pid(metrics)
    assert len([n for n in per_worker.values() if n > 0]) == 2, per_worker
    assert sum(per_worker.values()) == sent
    for _ in range(12):  # each scrape lands on either worker
        text = scrape(url)
        assert value(text, "frugal_requests_total", team="research", outcome="ok") == sent
        assert value(text, "frugal_cost_usd_total", team="research") == pytest.approx(
            float(SMALL) * sent
        )
        assert value(text, "gen_ai_client_operation_duration_seconds_count",
                     gen_ai_request_model="auto") == sent  # fmt: skip
        remaining = value(text, "frugal_budget_remaining_usd", team="research", budget="month")
        assert remaining == pytest.approx(100 - float(SMALL) * sent)
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
