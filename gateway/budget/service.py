"""Builds the budget machinery at start-up and runs its background tasks: the policy watcher
(file changes, SIGHUP) and the fail-open reconciler."""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.budget.alerts import Alerts
from gateway.budget.enforcer import Budget, done_ttl_ms
from gateway.budget.guard import Guard
from gateway.budget.reload import PolicyWatcher
from gateway.config import Settings
from gateway.keys import KeyRing, load_keys
from gateway.policies import Policies, load_policies, warn_unpoliced
from gateway.store.base import Store


@dataclass
class BudgetRuntime:
    enforcer: Budget
    watcher: PolicyWatcher
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.enforcer.drain()
        await self.enforcer.alerts.drain()


def start_budget(
    settings: Settings, store: Store, on_keys: Callable[[KeyRing], None]
) -> BudgetRuntime:
    """Load the policies (a ConfigError stops start-up) and start the background tasks."""
    cfg = settings.budget
    policies = load_policies(settings.policies_dir, cfg.timezone, cfg.default_policy)
    warn_unpoliced(policies, load_keys(settings.policies_dir).teams())
    replay_s = done_ttl_ms(cfg.reservation_ttl_s) / 1000 - 60  # within the done sets' lifetime
    guard = Guard(store, cfg.on_store_error == "fail_open", replay_window_s=replay_s)
    budget = Budget(settings, guard, policies, Alerts(store))

    def apply(p: Policies, keys: KeyRing) -> None:
        warn_unpoliced(p, keys.teams())
        budget.policies = p
        on_keys(keys)

    watcher = PolicyWatcher(settings.policies_dir, cfg.timezone, apply, cfg.reload_interval_s,
                            default_policy=cfg.default_policy)  # fmt: skip
    rt = BudgetRuntime(budget, watcher)
    loop = asyncio.get_running_loop()
    watcher.install_sighup()  # SIGHUP reloads even when file polling is off
    rt.tasks.append(loop.create_task(watcher.run()))
    if store.kind != "memory":
        rt.tasks.append(loop.create_task(guard.loop(cfg.reconcile_interval_s)))
    return rt
