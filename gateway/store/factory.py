"""Pick the store from configuration."""

from gateway.store.base import Store
from gateway.store.memory import MemoryStore
from gateway.store.redis_store import RedisStore


def open_store(redis_url: str | None) -> Store:
    return RedisStore(redis_url) if redis_url else MemoryStore()
