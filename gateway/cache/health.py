"""The cache never fails a request: every cache operation runs under a deadline, and an error
or a timeout is a warning (at most one per kind per interval) and a counted metric."""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger("frugal.cache")
T = TypeVar("T")
WARN_INTERVAL_S = 10.0


class Health:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.counts: Counter[str] = Counter()  # hits, misses, errors, timeouts, stores ...
        self._last_warned: dict[str, float] = {}

    async def guarded(
        self, what: str, op: Awaitable[T], timeout_s: float | None = None
    ) -> T | None:
        """`op`'s result, or None (with a warning and a metric) when it fails or is late."""
        try:
            async with asyncio.timeout(timeout_s or self.timeout_s):  # no task, unlike wait_for
                return await op
        except TimeoutError:
            self.failed(what, "timeout", f"slower than {(timeout_s or self.timeout_s) * 1000:g} ms")
        except Exception as e:  # a broken cache must never break a request
            self.failed(what, "error", f"{type(e).__name__}: {e}")
        return None

    def failed(self, what: str, kind: str, detail: str) -> None:
        self.counts[f"{kind}s"] += 1
        self.counts[f"{what}_{kind}s"] += 1
        now = time.monotonic()
        if now - self._last_warned.get(what, 0.0) >= WARN_INTERVAL_S:
            self._last_warned[what] = now
            log.warning(
                "cache %s failed (%s); the request proceeds uncached: %s", what, kind, detail
            )
