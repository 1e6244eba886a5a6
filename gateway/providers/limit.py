"""A bound on the requests in flight to one model (`models.<name>.limits.max_connections`): each
holds an upstream connection (a stream, until it ends), so without a bound a burst or a slow
upstream opens connections without limit. A request that finds every slot taken waits up to the
model's `timeouts.connect_s`, then fails as "unreachable" before anything is sent (so it may
fall back to another model); that says nothing about the model's health, so it does not cool
the model down (gateway/fault.py). The bound is per worker process.

It wraps any provider (the HTTP/1.1 client's pool and LiteLLM's alike), as httpx wraps a
transport, so it is written once."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.errors import UpstreamError
from gateway.providers.base import Completion, Endpoint, Provider

BUSY = "upstream_connections_exhausted"  # the error code of a request refused here


class Limited:
    def __init__(self, inner: Provider, limit: int, wait_s: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.limit = limit
        self._wait_s = wait_s
        self._slots = asyncio.Semaphore(limit)
        self.in_use = 0

    async def _acquire(self) -> None:
        if not self._slots.locked():  # a free slot: taken at once, no timer (the common case)
            await self._slots.acquire()
            self.in_use += 1
            return
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamError(
                f"model {self.name!r} is unreachable: all its {self.limit} connections are "
                "in use (models.<name>.limits.max_connections)",
                model=self.name, retryable=True, code=BUSY,
            ) from None  # fmt: skip
        self.in_use += 1

    def _release(self) -> None:
        self.in_use -= 1
        self._slots.release()

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        await self._acquire()
        try:
            return await self.inner.complete(endpoint, body)
        finally:
            self._release()

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        await self._acquire()
        it = self.inner.stream(endpoint, body)
        try:
            async for chunk in it:
                yield chunk
        finally:
            try:
                aclose = getattr(it, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._release()

    async def embed(self, body: dict[str, Any]) -> Completion:
        await self._acquire()
        try:
            return await self.inner.embed(body)
        finally:
            self._release()

    async def ready(self) -> bool:
        return await self.inner.ready()

    async def close(self) -> None:
        await self.inner.close()
