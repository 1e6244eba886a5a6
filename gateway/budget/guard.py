"""What happens when the shared store (Redis) fails: fail_open answers from an in-process
ledger and reconciles into Redis when it returns; fail_closed refuses with a 503.

Local accounting starts each budget from the last spend this replica saw in Redis, so a
replica keeps enforcing (approximately) during an outage. Reconciliation adds to Redis exactly
the spend recorded locally (`spent` deltas and the spend ledger), once."""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from gateway.budget.scripts import APPLY
from gateway.errors import Unavailable
from gateway.store.base import Script, ScriptArg, Store
from gateway.store.memory import MemoryStore

log = logging.getLogger("frugal.budget")
STORE_DOWN: tuple[type[BaseException], ...] = (OSError, TimeoutError)  # and the store's own


class Guard:
    def __init__(self, store: Store, fail_open: bool) -> None:
        self.remote = store
        self.down = (*STORE_DOWN, *getattr(store, "down_errors", ()))
        self.local = MemoryStore()
        self.fail_open = fail_open
        self.failures = 0  # store errors answered locally (a metric; /admin/budget/status)
        self.reconciled = 0  # hashes written back to the store after an outage
        self._base: dict[str, int] = {}  # budget key -> `spent` it was seeded with locally
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
    ) -> tuple[Any, bool]:  # fmt: skip
        """Run on the store; on a store failure, locally (fail_open, or `tolerant`: settles are
        never lost) or raise 503. Returns the result and whether it ran locally."""
        if not local:
            try:
                result = await self.remote.run(script, keys, args)
            except self.down as e:
                self._failed(e, tolerant)
            else:
                if self._down:
                    self._down = False
                    log.warning("budget store is back; reconciling local spend into it")
                return result, False
        self._seed(budget_keys)
        self._dirty = True
        return await self.local.run(script, keys, args), True

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
            if k not in self._base or data.hget(k, "spent") is None:
                base = self._seen.get(k, 0)
                data.hset(k, "spent", str(base).encode())
                self._base[k] = base

    async def reconcile(self) -> bool:
        """Write local spend back to the store. True when nothing is left to reconcile."""
        if not self._dirty or not await self.remote.ping():
            return not self._dirty
        data = self.local.data
        for key in data.keys("frugal:*:bud:*"):
            spent = int(data.hget(key, "spent") or b"0")
            delta = spent - self._base.get(key, 0)
            if delta:
                await self.remote.run(APPLY, [key], [max(data.pttl(key), 0), "spent", delta])
                self._base[key] = spent
                self._seen[key] = self._seen.get(key, 0) + delta
                self.reconciled += 1
        for key in data.keys("frugal:*:spend:*"):
            fields, ttl = data.hgetall(key), max(data.pttl(key), 0)
            data.delete(key)
            args: list[ScriptArg] = [ttl]
            for f, v in fields.items():
                args += [f.decode(), int(v)]
            try:
                await self.remote.run(APPLY, [key], args)
            except self.down:
                for f, v in fields.items():
                    data.hincrby(key, f.decode(), int(v))
                raise
            self.reconciled += 1
        in_flight = any(len(data.hgetall(k)) > 1 for k in data.keys("frugal:*:resv"))
        self._dirty = in_flight
        if not in_flight:  # start clean: the next outage seeds from the store's figures again
            self.local = MemoryStore()
            self._base.clear()
            self._down = False
            log.warning("budget store reconciled: local spend written back")
        return not in_flight

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
