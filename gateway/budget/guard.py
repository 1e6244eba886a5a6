"""What happens when the shared store (Redis) fails: fail_open answers from an in-process
ledger and reconciles into Redis when it returns; fail_closed refuses with a 503.

"Fails" means the store did not answer in time, the connection broke, or it answered an error
reply that means "cannot serve now" (`READONLY`, `OOM`, `LOADING`, `BUSY`, ...: store/resp.py
classifies them); any other error is a bug and is raised.

Local accounting starts each budget from the last spend this replica saw in Redis, so a replica
keeps enforcing (approximately) during an outage. A replica that never saw a figure (it started
during the outage) would start from zero, so every team's local spending is also capped by
`budget.fail_open_allowance_usd` per replica and per outage (the enforcer adds that line to its
local holds).

Reconciliation replays into Redis the settles that could not be written there, from a journal,
in order. Settles are idempotent by reservation id (scripts.py), so a settle that Redis ran but
whose reply was lost (a timeout) and that is replayed changes nothing the second time: spend is
never counted twice. A replay older than the done set's lifetime is `strict` (it charges only
if its hold is still recorded in Redis), so even then nothing is counted twice; at worst such a
settle is not charged (counted in `replays_dropped`). The journal holds at most `JOURNAL_MAX`
settles; beyond that the oldest are dropped (counted, logged)."""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.budget.scripts import SETTLE, SETTLE_STRICT
from gateway.errors import Unavailable
from gateway.store.base import Script, ScriptArg, Store
from gateway.store.memory import MemoryStore

log = logging.getLogger("frugal.budget")
STORE_DOWN: tuple[type[BaseException], ...] = (OSError, TimeoutError)  # and the store's own
JOURNAL_MAX = 100_000  # settles waiting for Redis (about 1 KB each)


@dataclass(slots=True)
class Pending:
    """A settle to replay into the store. `sent_at` (monotonic): when it was last sent there
    without an answer (it may have run); None when it never reached the store."""

    keys: list[str]
    args: list[ScriptArg]
    sent_at: float | None


class Guard:
    def __init__(self, store: Store, fail_open: bool, replay_window_s: float = 900.0) -> None:
        self.remote = store
        self.down = (*STORE_DOWN, *getattr(store, "down_errors", ()))
        self.local = MemoryStore()
        self.fail_open = fail_open
        self.replay_window_s = replay_window_s  # a settle's done mark outlives this (scripts.py)
        self.failures = 0  # store errors answered locally (a metric; /admin/budget/status)
        self.reconciled = 0  # settles replayed into the store after an outage
        self.replays_dropped = 0  # strict replays whose hold was gone, and journal overflow
        self.journal: deque[Pending] = deque()
        self._seeded: set[str] = set()  # budget keys seeded in the local store
        self._seen: dict[str, int] = {}  # budget key -> last `spent` read from the store
        self._down = False
        self._dirty = False

    @property
    def degraded(self) -> bool:
        return self._down or self._dirty

    def saw(self, key: str, spent: int) -> None:
        self._seen[key] = spent

    async def run(
        self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg],
        *, local: bool = False, budget_keys: Sequence[str] = (), tolerant: bool = False,
        local_call: tuple[Sequence[str], Sequence[ScriptArg]] | None = None,
    ) -> tuple[Any, bool]:  # fmt: skip
        """Run on the store; on a store failure, locally (fail_open, or `tolerant`: settles are
        never lost, they are journaled for replay) or raise 503. `local_call`: the keys and
        arguments to use when running locally (extra local-only lines). Returns the result and
        whether it ran locally."""
        sent_at: float | None = None
        if not local:
            sent_at = time.monotonic()
            try:
                result = await self.remote.run(script, keys, args)
            except self.down as e:
                self._failed(e, tolerant)
            else:
                if self._down:
                    self._down = False
                    log.warning("budget store is back; reconciling local spend into it")
                return result, False
        if tolerant:
            self._journal(Pending(list(keys), list(args), sent_at))
        lkeys, largs = local_call or (keys, args)
        self._seed(budget_keys)
        self._dirty = True
        return await self.local.run(script, lkeys, largs), True

    def _journal(self, entry: Pending) -> None:
        if len(self.journal) >= JOURNAL_MAX:
            self.journal.popleft()
            self.replays_dropped += 1
            log.error("budget settle journal full (%d): the oldest settle is dropped", JOURNAL_MAX)
        self.journal.append(entry)

    def _failed(self, e: Exception, tolerant: bool) -> None:
        self.failures += 1
        if not self._down:
            mode = "fail_open" if self.fail_open else "fail_closed"
            log.error("budget store unavailable (%s: %s); budget.on_store_error=%s",
                      type(e).__name__, e, mode)  # fmt: skip
        self._down = True
        if not self.fail_open and not tolerant:
            raise Unavailable(
                "The budget store (Redis) is unavailable and this gateway is configured to "
                "refuse requests it cannot account for (budget.on_store_error: fail_closed). "
                "Retry shortly."
            ) from None

    def _seed(self, budget_keys: Sequence[str]) -> None:
        data = self.local.data
        for k in budget_keys:
            if k not in self._seeded or data.hget(k, "spent") is None:
                data.hset(k, "spent", str(self._seen.get(k, 0)).encode())
                self._seeded.add(k)

    async def reconcile(self) -> bool:
        """Replay journaled settles into the store. True when nothing is left to reconcile."""
        if not self._dirty or not await self.remote.ping():
            return not self._dirty
        while self.journal:
            entry = self.journal[0]
            args = list(entry.args)
            if (
                entry.sent_at is not None
                and time.monotonic() - entry.sent_at > self.replay_window_s
            ):
                args[SETTLE_STRICT] = "1"
            sent_at = time.monotonic()
            try:
                done = await self.remote.run(SETTLE, entry.keys, args)
            except self.down:
                entry.sent_at = sent_at  # it may have run: the next replay must be idempotent
                raise
            except Exception:  # a bug, not an outage: never let one settle block the others
                log.exception("a journaled settle cannot be replayed; dropped")
                self.journal.popleft()
                self.replays_dropped += 1
                continue
            self.journal.popleft()
            self.reconciled += 1
            if int(done) == 0 and args[SETTLE_STRICT] == "1":
                self.replays_dropped += 1
        # Start clean: the next outage seeds from the store's figures again.
        self.local = MemoryStore()
        self._seeded.clear()
        self._dirty = False
        self._down = False
        log.warning("budget store reconciled: local settles replayed into it")
        return True

    async def loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if not self._dirty:
                continue
            try:
                await self.reconcile()
            except self.down:
                continue
            except Exception:
                log.exception("budget reconciliation failed; will retry")
