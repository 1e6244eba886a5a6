"""The Redis Cluster store (`redis+cluster://host:port` or `?cluster=true`), on redis-py's
cluster client, which follows the cluster's slot map. Single servers use `RedisStore`."""

from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.base import Script, ScriptArg
from gateway.store.resp import StoreUnavailable, reply_error
from gateway.store.settings import RedisTLS

# redis-py's classes for the error replies that mean "cannot serve now" (resp.py's
# UNAVAILABLE_CODES); LOADING and auth failures are already its ConnectionErrors.
_UNAVAILABLE = (ReadOnlyError, OutOfMemoryError, NoPermissionError, TryAgainError)


class ClusterStore:
    kind = "redis"
    down_errors = (RedisConnectionError, RedisTimeoutError, ClusterError, *_UNAVAILABLE)

    def __init__(self, url: str, timeout_s: float = 0.5, tls: RedisTLS | None = None) -> None:
        clean = url.replace("redis+cluster://", "redis://").replace("?cluster=true", "")
        kw: dict[str, Any] = {}
        if clean.startswith("rediss://") and tls is not None:
            kw = {"ssl_ca_certs": str(tls.ca_file) if tls.ca_file else None,
                  "ssl_certfile": str(tls.cert_file) if tls.cert_file else None,
                  "ssl_keyfile": str(tls.key_file) if tls.key_file else None,
                  "ssl_cert_reqs": "required" if tls.verify else "none",
                  "ssl_check_hostname": tls.verify and tls.check_hostname}  # fmt: skip
        self._r: Any = RedisCluster.from_url(
            clean, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **kw
        )
        self._scripts: dict[str, AsyncScript] = {}

    async def get(self, key: str) -> bytes | None:
        v: bytes | None = await self._r.get(key)
        return v

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        await self._r.set(key, value, px=None if ttl_s is None else int(ttl_s * 1000))

    async def delete(self, *keys: str) -> int:
        n = 0
        for k in keys:  # one by one: keys may live in different cluster slots
            n += int(await self._r.delete(k))
        return n

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        n = int(await self._r.incrby(key, amount))
        if n == amount and ttl_s is not None:
            await self._r.pexpire(key, int(ttl_s * 1000))
        return n

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        v: dict[bytes, bytes] = await self._r.hgetall(key)
        return v

    async def hincrby(self, key: str, field: str, amount: int) -> int:
        return int(await self._r.hincrby(key, field, amount))

    async def keys(self, pattern: str) -> list[str]:
        out: list[str] = []
        async for k in self._r.scan_iter(match=pattern, count=500):
            out.append(k.decode() if isinstance(k, bytes) else str(k))
        return out

    def __repr__(self) -> str:
        return "ClusterStore()"  # redis-py's own repr may show the URL

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        s = self._scripts.get(script.name)
        if s is None:
            s = self._r.register_script(script.lua)
            self._scripts[script.name] = s
        try:
            return await s(keys=list(keys), args=list(args))
        except _UNAVAILABLE:
            raise
        except ResponseError as e:  # BUSY, MISCONF, or a script's inner OOM / READONLY
            err = reply_error(str(e))
            if isinstance(err, StoreUnavailable):
                raise err from e
            raise

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._r.aclose()
