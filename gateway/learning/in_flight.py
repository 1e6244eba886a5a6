"""Client requests in flight on this worker, so that the label loop's background work yields to
them: a paired-sampling job starts, and goes on between its calls, only when no client request
is being served (gateway/front.py counts every generation request from its first byte to its
last) and none has been for `GRACE_S` (a client that sends its next request as soon as it has
an answer finds the worker free). The work then never holds the event loop, nor the cores the
router's model runs on, while a client waits; under unbroken load the jobs wait in their
bounded queue, and those that do not fit are dropped and counted (gateway/learning/sampling.py)."""

import asyncio
import time
from types import TracebackType

# Idle this long before background work goes on: with 0 a job starts in the short gap between
# two requests of a back-to-back client, whose next request then waits for the job's step
# (docs/benchmarks.md, "Paired sampling": p99 median 24 ms at 1 client against 10 ms without
# sampling; with 2 ms, 9 ms against 11 ms).
GRACE_S = 0.002


class InFlight:
    """`with in_flight:` around a client request; `await in_flight.quiet()` in the background."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.count = 0
        self.grace_s = grace_s
        self._idle_since = 0.0  # time.monotonic() when the last request ended
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
            self._idle_since = time.monotonic()
            self._quiet.set()

    async def quiet(self) -> None:
        """Return once no client request is in flight and none has been for `grace_s` (at once
        when the worker has been idle that long)."""
        while True:
            if self.count:
                await self._quiet.wait()
                continue
            left = self._idle_since + self.grace_s - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)
