"""API keys: `frg_<id>_<secret>`. Only the SHA-256 of a key is stored (policies/keys.yaml),
looked up by its public id and compared in constant time. Keys never reach logs or errors."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.config import ConfigError

KEYS_FILE = "keys.yaml"
_HEADER = "# API keys: SHA-256 hashes only. Add with `frugal keys create --team T`.\n"


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[0-9a-f]{12}$")
    team: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str | None = None
    created: str | None = None


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Principal:
    team: str
    key_id: str | None  # None for the anonymous team


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) == 3 and parts[0] == "frg" and len(parts[1]) == 12:
        return parts[1]
    return None


class KeyRing:
    def __init__(self, entries: list[KeyEntry]) -> None:
        self._by_id = {e.id: e for e in entries}

    def __len__(self) -> int:
        return len(self._by_id)

    def teams(self) -> set[str]:
        return {e.team for e in self._by_id.values()}

    def verify(self, key: str) -> Principal | None:
        entry = self._by_id.get(key_id_of(key) or "")
        if entry is None:
            # Same work either way, so timing does not tell a wrong id from a wrong secret.
            hmac.compare_digest(hash_key(key), "0" * 64)
            return None
        if not hmac.compare_digest(hash_key(key), entry.sha256):
            return None
        return Principal(entry.team, entry.id)


def load_keys(policies_dir: Path) -> KeyRing:
    path = policies_dir / KEYS_FILE
    if not path.exists():
        return KeyRing([])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = KeysFile.model_validate(data)
    except OSError as e:
        raise ConfigError(f"cannot read keys file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"keys file {path} is not UTF-8 (byte {e.start}); fix: save it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in e.errors())
        raise ConfigError(
            f"invalid keys file {path}: {errs}; fix: recreate entries with "
            "`frugal keys create --team T`"
        ) from None
    return KeyRing(list(parsed.keys))


def create_key(policies_dir: Path, team: str, name: str | None = None) -> str:
    """Create a key for `team`, store its hash, and return the key (shown once)."""
    key_id = secrets.token_hex(6)
    key = f"frg_{key_id}_{secrets.token_urlsafe(32).replace('_', 'x')}"
    path = policies_dir / KEYS_FILE
    data: dict[str, Any] = {"keys": []}
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {"keys": []}
    entry: dict[str, Any] = {
        "id": key_id,
        "team": team,
        "sha256": hash_key(key),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if name:
        entry["name"] = name
    data.setdefault("keys", []).append(entry)
    KeysFile.model_validate(data)
    policies_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(_HEADER + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return key
