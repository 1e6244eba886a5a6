"""Keys are printed once, stored as SHA-256 only, and verified in constant time."""

import hashlib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.keys import hash_key, load_keys


def test_keys_create_prints_once_and_stores_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "teams.yaml").write_text("teams: {research: {budgets: {month: '5'}}}")
    assert main(["keys", "create", "--team", "research", "--policies", str(tmp_path)]) == 0
    key = capsys.readouterr().out.strip()
    stored = (tmp_path / "keys.yaml").read_text()
    assert key.startswith("frg_") and key not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    ring = load_keys(tmp_path)
    principal = ring.verify(key)
    assert principal is not None and principal.team == "research"
    assert principal.key_id and principal.key_id in key
    assert ring.verify(key[:-1] + ("a" if key[-1] != "a" else "b")) is None
    assert ring.verify("sk-anything") is None


def test_bad_keys_file_is_a_clear_error(tmp_path: Path) -> None:
    from gateway.config import ConfigError

    (tmp_path / "keys.yaml").write_text("keys:\n  - {id: x, team: t, sha256: nothex}\n")
    with pytest.raises(ConfigError, match="keys create"):
        load_keys(tmp_path)


def test_hash_is_sha256() -> None:
    assert hash_key("abc") == hashlib.sha256(b"abc").hexdigest()
