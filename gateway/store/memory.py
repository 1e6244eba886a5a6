"""The in-process store: one replica, no Redis. Expiry is checked lazily on access and swept
on writes now and then, so memory stays bounded by live keys."""

import fnmatch
import time
from collections.abc import Sequence
from typing import Any

from gateway.store.base import Script, ScriptArg

Value = bytes | dict[bytes, bytes] | set[bytes]


class MemoryData:
    """Dict-backed `Data` with Redis semantics (used directly by script twins)."""

    def __init__(self) -> None:
        self._v: dict[str, Value] = {}
        self._exp: dict[str, float] = {}
        self._writes = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def _live(self, key: str) -> Value | None:
        exp = self._exp.get(key)
        if exp is not None and exp <= time.monotonic():
            self._v.pop(key, None)
            self._exp.pop(key, None)
            return None
        return self._v.get(key)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % 1024 == 0:
            now = time.monotonic()
            for k in [k for k, e in self._exp.items() if e <= now]:
                self._v.pop(k, None)
                self._exp.pop(k, None)

    def _bytes(self, key: str) -> bytes | None:
        v = self._live(key)
        if v is not None and not isinstance(v, bytes):
            raise TypeError(f"WRONGTYPE {key} holds a {type(v).__name__}")
        return v

    def _hash(self, key: str, create: bool = False) -> dict[bytes, bytes]:
        v = self._live(key)
        if v is None:
            h: dict[bytes, bytes] = {}
            if create:
                self._v[key] = h
            return h
        if not isinstance(v, dict):
            raise TypeError(f"WRONGTYPE {key} does not hold a hash")
        return v

    def _set(self, key: str, create: bool = False) -> set[bytes]:
        v = self._live(key)
        if v is None:
            s: set[bytes] = set()
            if create:
                self._v[key] = s
            return s
        if not isinstance(v, set):
            raise TypeError(f"WRONGTYPE {key} does not hold a set")
        return v

    def get(self, key: str) -> bytes | None:
        return self._bytes(key)

    def set(self, key: str, value: bytes, ttl_ms: int | None = None) -> None:
        self._v[key] = value
        if ttl_ms is not None:
            self._exp[key] = time.monotonic() + ttl_ms / 1000
        else:
            self._exp.pop(key, None)
        self._wrote()

    def delete(self, key: str) -> int:
        existed = self._live(key) is not None
        self._v.pop(key, None)
        self._exp.pop(key, None)
        return int(existed)

    def incrby(self, key: str, amount: int) -> int:
        n = int(self._bytes(key) or b"0") + amount
        self._v[key] = str(n).encode()
        self._wrote()
        return n

    def hget(self, key: str, field: str) -> bytes | None:
        return self._hash(key).get(field.encode())

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return dict(self._hash(key))

    def hset(self, key: str, field: str, value: bytes) -> None:
        self._hash(key, create=True)[field.encode()] = value
        self._wrote()

    def hdel(self, key: str, field: str) -> int:
        h = self._hash(key)
        existed = h.pop(field.encode(), None) is not None
        if not h:
            self.delete(key)
        return int(existed)

    def hincrby(self, key: str, field: str, amount: int) -> int:
        h = self._hash(key, create=True)
        n = int(h.get(field.encode(), b"0")) + amount
        h[field.encode()] = str(n).encode()
        self._wrote()
        return n

    def pexpire(self, key: str, ttl_ms: int) -> None:
        if self._live(key) is not None:
            self._exp[key] = time.monotonic() + ttl_ms / 1000

    def pttl(self, key: str) -> int:
        if self._live(key) is None:
            return -2
        exp = self._exp.get(key)
        return -1 if exp is None else max(0, int((exp - time.monotonic()) * 1000))

    def persist(self, key: str) -> None:
        self._exp.pop(key, None)

    def exists(self, key: str) -> bool:
        return self._live(key) is not None

    def sadd(self, key: str, member: str) -> int:
        s = self._set(key, create=True)
        before = len(s)
        s.add(member.encode())
        self._wrote()
        return len(s) - before

    def sismember(self, key: str, member: str) -> bool:
        return member.encode() in self._set(key)

    def keys(self, pattern: str) -> list[str]:
        return [
            k
            for k in list(self._v)
            if self._live(k) is not None and fnmatch.fnmatchcase(k, pattern)
        ]


class MemoryStore:
    """Every method runs without awaiting in between, so each call is atomic on the loop."""

    kind = "memory"

    def __init__(self) -> None:
        self.data = MemoryData()

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.data.set(key, value, None if ttl_s is None else int(ttl_s * 1000))

    async def delete(self, *keys: str) -> int:
        return sum(self.data.delete(k) for k in keys)

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        n = self.data.incrby(key, amount)
        if n == amount and ttl_s is not None:
            self.data.pexpire(key, int(ttl_s * 1000))
        return n

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return self.data.hgetall(key)

    async def hincrby(self, key: str, field: str, amount: int) -> int:
        return self.data.hincrby(key, field, amount)

    async def keys(self, pattern: str) -> list[str]:
        return self.data.keys(pattern)

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        return script.local(self.data, keys, args)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
