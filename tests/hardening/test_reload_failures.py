"""A keys.yaml with a non-UTF-8 byte, or one that cannot be read, no longer kills the reload
task in silence: the failure is logged, the last good keys and policies stay in force, the load
is retried, and a fixed file applies (issue 12, problem 9)."""

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.budget import reload as reload_mod
from gateway.budget.reload import PolicyWatcher
from gateway.config import Settings
from gateway.keys import KEYS_FILE, KeyRing, create_key
from gateway.policies import Policies
from tests.conftest import model_cfg
from tests.support.servers import GatewayServer

REFUSED = "policy reload refused"
FREE = {"input_per_mtok": "0", "output_per_mtok": "0"}


def _until(check: Callable[[], bool], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _break_encoding(policies: Path) -> bytes:
    """keys.yaml with a Latin-1 byte in a comment: every entry in it is otherwise valid."""
    good = (policies / KEYS_FILE).read_bytes()
    (policies / KEYS_FILE).write_bytes(b"# caf\xe9\n" + good)
    return good


class Applied:
    def __init__(self) -> None:
        self.keys: KeyRing | None = None
        self.count = 0

    def __call__(self, policies: Policies, keys: KeyRing) -> None:
        self.keys, self.count = keys, self.count + 1


async def _watch(watcher: PolicyWatcher, until: Callable[[], bool], timeout_s: float) -> bool:
    task = asyncio.create_task(watcher.run())
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert not task.done(), "the watcher task died"
            if until():
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        task.cancel()


def test_non_utf8_keys_file_is_logged_and_a_later_fix_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = create_key(tmp_path, "t")
    applied = Applied()
    watcher = PolicyWatcher(tmp_path, "UTC", applied, interval_s=0.05)

    async def scenario() -> None:
        good = _break_encoding(tmp_path)
        assert await _watch(watcher, lambda: watcher.refused >= 1, 5)
        assert applied.count == 0  # nothing was applied: the old keys stay in force
        (tmp_path / KEYS_FILE).write_bytes(good)
        new = create_key(tmp_path, "t2")
        assert await _watch(watcher, lambda: applied.count >= 1, 5)
        assert applied.keys is not None
        assert applied.keys.verify(new) is not None and applied.keys.verify(old) is not None

    with caplog.at_level(logging.ERROR, "frugal.policies"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if REFUSED in r.getMessage()]
    assert lines and "not UTF-8" in lines[0] and str(tmp_path / KEYS_FILE) in lines[0]


@pytest.mark.parametrize("interval_s", [0.05, 0.0])  # 0: no polling, SIGHUP and admin API only
def test_an_io_error_is_retried_without_any_file_change(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    interval_s: float,
) -> None:
    """A transient read error (EIO, a network file system) leaves the files as they were, so no
    change would ever trigger the load again: it is retried on its own, also when the failed
    load came from SIGHUP or the admin API with polling off."""
    create_key(tmp_path, "t")
    real = reload_mod.load_keys
    failures = [OSError(5, "Input/output error")]

    def flaky(folder: Path) -> KeyRing:
        if failures:
            raise failures.pop()
        return real(folder)

    monkeypatch.setattr(reload_mod, "load_keys", flaky)
    monkeypatch.setattr(reload_mod, "RETRY_MIN_S", 0.2)
    applied = Applied()
    watcher = PolicyWatcher(tmp_path, "UTC", applied, interval_s=interval_s)

    async def scenario() -> None:
        assert watcher.reload() is False  # e.g. a SIGHUP's load fails
        assert await _watch(watcher, lambda: applied.count == 1, 5)
        assert not watcher.failing

    with caplog.at_level(logging.ERROR, "frugal.policies"):
        asyncio.run(scenario())
    assert any("Input/output error" in r.getMessage() for r in caplog.records)


def test_a_keys_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    from gateway.config import ConfigError
    from gateway.keys import load_keys

    (tmp_path / KEYS_FILE).mkdir()  # reading it fails with an OSError
    with pytest.raises(ConfigError, match="cannot read keys file"):
        load_keys(tmp_path)
    (tmp_path / KEYS_FILE).rmdir()
    (tmp_path / KEYS_FILE).write_bytes(b"keys: []\n# \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_keys(tmp_path)


def test_running_gateway_keeps_old_keys_while_the_file_is_broken_then_applies_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policies = tmp_path / "policies"
    old = create_key(policies, "t")
    settings = Settings(
        models={"m": model_cfg("http://127.0.0.1:9/v1", "m", price=FREE)},
        policies_dir=policies,
        budget={"reload_interval_s": 0.1},
    )

    def status(c: httpx.Client, key: str) -> int:
        return c.get("/v1/models", headers={"authorization": f"Bearer {key}"}).status_code

    with (
        caplog.at_level(logging.INFO, "frugal.policies"),
        GatewayServer(settings) as gw,
        httpx.Client(base_url=gw.url, timeout=10) as c,
    ):
        assert status(c, old) == 200
        new = create_key(policies, "t")  # the file now holds both keys...
        assert _until(lambda: status(c, new) == 200)
        good = _break_encoding(policies)  # ...then gains a byte that is not UTF-8
        assert _until(lambda: any(REFUSED in r.getMessage() for r in caplog.records))
        assert status(c, old) == 200 and status(c, new) == 200  # last good set in force
        # The fix revokes the old key: it must apply, so the revocation takes effect.
        data = yaml.safe_load(good)
        data["keys"] = [k for k in data["keys"] if k["id"] != old.split("_")[1]]
        (policies / KEYS_FILE).write_text(yaml.safe_dump(data))
        assert _until(lambda: status(c, old) == 401), "the fixed file was never applied"
        assert status(c, new) == 200
