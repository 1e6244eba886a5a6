"""The Redis store (FRUGAL_REDIS_URL, one server: `redis://`, `rediss://`, `unix://`): many
replicas share budgets, limits and the cache. Runs on the pipelined client in `resp.py`."""

import hashlib
from collections.abc import Sequence
from typing import Any

from gateway.store.base import Script, ScriptArg
from gateway.store.resp import ReplyError, RespClient
from gateway.store.settings import RedisTLS


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, timeout_s: float = 0.5, tls: RedisTLS | None = None) -> None:
        self._r = RespClient(url, timeout_s, tls)
        self._sha: dict[str, str] = {}

    async def get(self, key: str) -> bytes | None:
        v: bytes | None = await self._r.call("GET", key)
        return v

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if ttl_s is None:
            await self._r.call("SET", key, value)
        else:
            await self._r.call("SET", key, value, "PX", max(int(ttl_s * 1000), 1))

    async def delete(self, *keys: str) -> int:
        n = 0
        for k in keys:
            n += int(await self._r.call("DEL", k))
        return n

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        n = int(await self._r.call("INCRBY", key, amount))
        if n == amount and ttl_s is not None:
            await self._r.call("PEXPIRE", key, int(ttl_s * 1000))
        return n

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        flat: list[bytes] = await self._r.call("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def hincrby(self, key: str, field: str, amount: int) -> int:
        return int(await self._r.call("HINCRBY", key, field, amount))

    async def keys(self, pattern: str) -> list[str]:
        out: list[str] = []
        cursor = b"0"
        while True:
            cursor, batch = await self._r.call("SCAN", cursor, "MATCH", pattern, "COUNT", 500)
            out += [k.decode() for k in batch]
            if cursor == b"0":
                return out

    def __repr__(self) -> str:
        return f"RedisStore({self._r!r})"

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        sha = self._sha.get(script.name)
        if sha is None:
            digest = hashlib.sha1(script.lua.encode(), usedforsecurity=False)
            sha = self._sha[script.name] = digest.hexdigest()
        try:
            return await self._r.call("EVALSHA", sha, len(keys), *keys, *args)
        except ReplyError as e:
            if e.code != "NOSCRIPT":
                raise
        # First use on this server (or after SCRIPT FLUSH): EVAL runs it and caches it there.
        return await self._r.call("EVAL", script.lua, len(keys), *keys, *args)

    async def ping(self) -> bool:
        try:
            return bool(await self._r.call("PING") == b"PONG")
        except Exception:
            return False

    async def close(self) -> None:
        await self._r.close()
