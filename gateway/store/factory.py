"""Pick the store from configuration."""

from gateway.store.base import Store
from gateway.store.cluster_store import ClusterStore, is_cluster_url
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore


def open_store(redis_url: str | None, timeout_s: float = 0.5) -> Store:
    if not redis_url:
        return MemoryStore()
    if is_cluster_url(redis_url):
        return ClusterStore(redis_url, timeout_s)
    return RedisStore(redis_url, timeout_s)
