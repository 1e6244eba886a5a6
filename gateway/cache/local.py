"""The in-process cache's entries (no Redis: one replica): least recently used first out, with
at most `cache.max_entries` entries and `cache.max_bytes` bytes (keys and values), each also
expiring after its TTL. With Redis, Redis bounds the entries (`maxmemory` with an LRU policy)."""

import fnmatch
import time
from collections import OrderedDict
from typing import Any


class LocalEntries:
    kind = "memory"

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.nbytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def _drop(self, key: str) -> bool:
        item = self._items.pop(key, None)
        if item is None:
            return False
        self.nbytes -= len(key) + len(item[0])
        return True

    def _live(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            self._drop(key)
            return None
        return item[0]

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        if value is not None:
            self._items.move_to_end(key)  # most recently used
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._drop(key)
        size = len(key) + len(value)
        if size > self.max_bytes:
            return  # could never fit
        expires = time.monotonic() + ttl_s if ttl_s is not None else float("inf")
        self._items[key] = (value, expires)
        self.nbytes += size
        while len(self._items) > self.max_entries or self.nbytes > self.max_bytes:
            old, (old_value, _) = self._items.popitem(last=False)
            self.nbytes -= len(old) + len(old_value)
            self.evicted += 1

    async def delete(self, *keys: str) -> int:
        return sum(self._drop(k) for k in keys)

    async def keys(self, pattern: str) -> list[str]:
        return [k for k in list(self._items) if self._live(k) is not None
                and fnmatch.fnmatchcase(k, pattern)]  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return {"entries": len(self._items), "bytes": self.nbytes, "evicted": self.evicted,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes}  # fmt: skip
