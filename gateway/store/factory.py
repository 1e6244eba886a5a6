"""Pick the store from configuration."""

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore
from gateway.store.settings import StoreSettings


def is_cluster_url(url: str) -> bool:
    return url.startswith("redis+cluster://") or "cluster=true" in url


def open_store(
    redis_url: str | None, timeout_s: float | None = None, options: StoreSettings | None = None
) -> Store:
    """`timeout_s` overrides `options.timeout_s` (e.g. the CLI waits longer)."""
    opts = options or StoreSettings()
    timeout = opts.timeout_s if timeout_s is None else timeout_s
    if not redis_url:
        return MemoryStore()
    if is_cluster_url(redis_url):
        from gateway.store.cluster_store import ClusterStore  # redis-py: only Cluster needs it

        return ClusterStore(redis_url, timeout, opts.tls)
    return RedisStore(redis_url, timeout, opts.tls)
