"""Client requests in flight on this worker, so that the label loop's background work yields to
them: a paired-sampling job starts, and goes on between its calls, only when no client request
is being served (gateway/front.py counts every generation request from its first byte to its
last). The work then never holds the event loop, nor the cores the router's model runs on,
while a client waits; under unbroken load the jobs wait in their bounded queue, and those
that do not fit are dropped and counted (gateway/learning/sampling.py)."""

import asyncio
from types import TracebackType


class InFlight:
    """`with in_flight:` around a client request; `await in_flight.quiet()` in the background."""

    def __init__(self) -> None:
        self.count = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def __enter__(self) -> None:
        self.count += 1
        self._quiet.clear()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.count -= 1
        if self.count == 0:
            self._quiet.set()

    async def quiet(self) -> None:
        """Return once no client request is in flight (at once when none is)."""
        while self.count:
            await self._quiet.wait()
