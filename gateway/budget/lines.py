"""Which budgets and rate limits apply to one request: the team's, then the key's own."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.budget import layout
from gateway.budget.money import to_nano, usd
from gateway.budget.periods import Window, window
from gateway.policies import Budgets, Limits, Team

GRACE_S = 2 * 86400  # budget counters outlive their period by this much (late settles, reports)


@dataclass(frozen=True, slots=True)
class Line:
    """One applicable budget in its current window."""

    key_id: str | None  # None: the team's own budget
    window: Window
    store_key: str
    limit: Decimal

    @property
    def limit_nano(self) -> int:
        return to_nano(self.limit)

    def ttl_ms(self, now: datetime) -> int:
        if self.window.end is None:
            return 0
        return int(((self.window.end - now).total_seconds() + GRACE_S) * 1000)

    def label(self, team: str) -> str:
        who = f"team {team!r}" if self.key_id is None else f"key {self.key_id} of team {team!r}"
        return f"the {self.window.period} budget of {who} ({usd(self.limit)})"

    @property
    def name(self) -> str:
        return f"{layout.scope(self.key_id)}.{self.window.period}"


@dataclass(frozen=True, slots=True)
class RateLine:
    key_id: str | None
    store_key: str
    limits: Limits


def budget_lines(team: Team, key_id: str | None, now: datetime) -> list[Line]:
    scopes: list[tuple[str | None, Budgets]] = [(None, team.policy.budgets)]
    if (kp := team.key(key_id)) is not None:
        scopes.append((key_id, kp.budgets))
    out: list[Line] = []
    for scope_id, budgets in scopes:
        for period, limit in budgets.items():
            w = window(period, now, team.tz)
            out.append(Line(scope_id, w, layout.budget(team.name, scope_id, w.id), limit))
    return out


def rate_lines(team: Team, key_id: str | None, now: datetime) -> list[RateLine]:
    minute = int(now.timestamp() // 60)
    out: list[RateLine] = []
    lim = team.policy.limits
    if lim.rpm or lim.tpm:
        out.append(RateLine(None, layout.rate(team.name, None, minute), lim))
    kp = team.key(key_id)
    if kp is not None and (kp.limits.rpm or kp.limits.tpm):
        out.append(RateLine(key_id, layout.rate(team.name, key_id, minute), kp.limits))
    return out
