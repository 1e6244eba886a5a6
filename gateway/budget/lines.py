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
    limit_nano: int

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


class LineCache:
    """The lines of a (team, key) for the current minute: windows and rate keys change only on
    whole minutes (midnight in any current time zone is one), so a request usually finds them
    here instead of building calendar windows again. Keyed by the Team object itself: a policy
    reload makes new ones."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str | None], tuple[Team, int, list[Line], list[RateLine]]] = {}

    def get(
        self, team: Team, key_id: str | None, now: datetime
    ) -> tuple[list[Line], list[RateLine]]:
        minute = int(now.timestamp() // 60)
        row = self._rows.get((id(team), key_id))
        if row is None or row[0] is not team or row[1] != minute:
            if len(self._rows) > 10_000:
                self._rows.clear()
            row = (team, minute, budget_lines(team, key_id, now), rate_lines(team, key_id, now))
            self._rows[(id(team), key_id)] = row
        return row[2], row[3]


def budget_lines(team: Team, key_id: str | None, now: datetime) -> list[Line]:
    scopes: list[tuple[str | None, Budgets]] = [(None, team.policy.budgets)]
    if (kp := team.key(key_id)) is not None:
        scopes.append((key_id, kp.budgets))
    out: list[Line] = []
    for scope_id, budgets in scopes:
        for period, limit in budgets.items():
            w = window(period, now, team.tz)
            key = layout.budget(team.name, scope_id, w.id)
            out.append(Line(scope_id, w, key, limit, to_nano(limit)))
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
