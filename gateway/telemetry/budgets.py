"""Budget standings as gauges, read from the shared store when Prometheus scrapes: the same on
every worker and every replica, so no per-process gauge can go stale or disagree.

    frugal_budget_limit_usd{team, budget}                      the budget's amount
    frugal_budget_spent_usd{team, budget}                      settled spend in the window
    frugal_budget_remaining_usd{team, budget}                  limit - spent - reserved
    frugal_budget_window_end_timestamp_seconds{team, budget}   when the window resets

`budget` is the period (day, week, month, lifetime) of the team's own budgets; per-key
budgets are left out to keep the series few."""

import asyncio
import logging
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric

from gateway.budget.lines import budget_lines
from gateway.budget.money import from_nano
from gateway.policies import Policies
from gateway.store.base import Store

log = logging.getLogger("frugal.telemetry")
LABELS = ["team", "budget"]


async def budget_families(store: Store, policies: Policies, timeout_s: float = 2.0) -> list[Metric]:
    limit = GaugeMetricFamily("frugal_budget_limit_usd", "Budget amount in USD", labels=LABELS)
    spent = GaugeMetricFamily("frugal_budget_spent_usd", "Settled spend in the budget's window",
                              labels=LABELS)  # fmt: skip
    left = GaugeMetricFamily("frugal_budget_remaining_usd",
                             "Budget left: limit - spent - reserved", labels=LABELS)  # fmt: skip
    ends = GaugeMetricFamily("frugal_budget_window_end_timestamp_seconds",
                             "When the budget's current window resets (Unix time)",
                             labels=LABELS)  # fmt: skip
    now = datetime.now(UTC)
    try:
        async with asyncio.timeout(timeout_s):
            for name, team in sorted(policies.teams.items()):
                for ln in budget_lines(team, None, now):
                    h = await store.hgetall(ln.store_key)
                    s = from_nano(int(h.get(b"spent", 0)))
                    held = from_nano(int(h.get(b"reserved", 0)))
                    labels = [name, ln.window.period]
                    limit.add_metric(labels, float(ln.limit))
                    spent.add_metric(labels, float(s))
                    left.add_metric(labels, float(ln.limit - s - held))
                    if ln.window.end is not None:
                        ends.add_metric(labels, ln.window.end.timestamp())
    except Exception:  # a scrape without budgets beats a failed scrape
        log.warning("budget gauges unavailable for this scrape", exc_info=True)
        return []
    return [limit, spent, left, ends]
