"""Identical requests in flight at once share one upstream call (per replica).

The first miss for a key becomes the leader; later identical requests wait for its answer.
The leader always settles (with the entry, or None when it got no complete answer: then each
waiter calls upstream itself; errors are never shared). A waiter gives up after `wait_s` and
removes a leader that never settled (e.g. a stream the client never read)."""

import asyncio
import time

from gateway.cache.entry import Entry


class _Flight:
    __slots__ = ("future", "started")

    def __init__(self) -> None:
        self.future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self.started = time.monotonic()


class Flights:
    def __init__(self, wait_s: float) -> None:
        self._wait_s = wait_s
        self._flights: dict[str, _Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def lead(self, key: str) -> bool:
        """Become the leader for `key` if nobody is; no await, so atomic on the event loop."""
        if key in self._flights:
            return False
        self._flights[key] = _Flight()
        return True

    async def follow(self, key: str) -> Entry | None:
        flight = self._flights.get(key)
        if flight is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(flight.future), self._wait_s)
        except TimeoutError:
            if self._flights.get(key) is flight:
                self.settle(key, None)
            return None

    def settle(self, key: str, entry: Entry | None) -> None:
        flight = self._flights.pop(key, None)
        if flight is not None and not flight.future.done():
            flight.future.set_result(entry)
