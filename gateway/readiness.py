"""`/readyz`'s view of the upstreams. Probing an upstream sends a request with its real key, so
the result is kept for `server.readyz_cache_s` and one probe round runs at a time: however often
and however many at once orchestrators ask, each upstream is probed at most once per period."""

import asyncio
import time
from collections.abc import Collection, Mapping

from gateway.providers.base import Provider


class Readiness:
    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._lock = asyncio.Lock()
        self._at: float | None = None
        self._upstreams: dict[str, str] = {}
        self.probes = 0  # probe rounds run (for tests and the curious)

    async def upstreams(
        self, providers: Mapping[str, Provider], unavailable: Collection[str]
    ) -> dict[str, str]:
        """Each upstream's state: "ok", "unreachable" or "disabled" (no key configured)."""
        async with self._lock:  # callers that arrive during a round share its result
            if self._at is None or time.monotonic() - self._at >= self._ttl_s:
                self._upstreams = await _probe(providers, unavailable)
                self._at = time.monotonic()
                self.probes += 1
            return dict(self._upstreams)


async def _probe(providers: Mapping[str, Provider], unavailable: Collection[str]) -> dict[str, str]:
    out = {}
    for name, p in providers.items():  # one upstream at a time
        if name in unavailable:
            out[name] = "disabled"
        else:
            try:
                out[name] = "ok" if await p.ready() else "unreachable"
            except Exception:  # a probe that fails in an unexpected way is a failed probe
                out[name] = "unreachable"
    return out
