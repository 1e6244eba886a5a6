"""A gateway with budgets, metrics and the fake upstream, shared by the cost tests."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from tests.support.fake_openai import FakeOpenAI
from tests.support.servers import GatewayServer
from tests.telemetry.support import ADMIN_KEY, UPSTREAM_KEY_ENV, config, write_policies


@pytest.fixture(scope="module")
def priced_gateway(
    fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """small-a $100/$200 per Mtok, large-a $2000/$8000 (tests/telemetry/support.py); no cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv(UPSTREAM_KEY_ENV, fake_openai.api_key or "")
    mp.setenv("FRUGAL_ADMIN_KEY", ADMIN_KEY)
    policies = tmp_path_factory.mktemp("policies")
    keys = write_policies(policies)
    cfg = config(fake_openai.url, policies_dir=policies, cache={"enabled": False})
    with GatewayServer(Settings(**cfg)) as gw:
        yield gw.url, keys
    mp.undo()


def admin(url: str, path: str) -> Any:
    r = httpx.get(f"{url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    r.raise_for_status()
    return r.json()
