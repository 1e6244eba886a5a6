"""Shared state behind one contract: in-process (one replica, the default) or Redis."""

from gateway.store.base import Script, Store
from gateway.store.factory import open_store

__all__ = ["Script", "Store", "open_store"]
