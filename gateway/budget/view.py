"""What the router and the pipeline learn from a team's budgets at decision time: the remaining
fraction of every applicable budget, and what the soft threshold and the hard limit ask for."""

from dataclasses import dataclass, field
from decimal import Decimal

from gateway.budget.lines import Line
from gateway.budget.money import from_nano, usd
from gateway.errors import InsufficientQuota
from gateway.policies import Team


@dataclass(frozen=True, slots=True)
class Standing:
    """One budget's state: limit, spent and held by reservations (USD)."""

    line: Line
    spent: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return self.line.limit - self.spent - self.reserved

    @property
    def fraction_left(self) -> float:
        return max(0.0, float(self.remaining / self.line.limit))


@dataclass(frozen=True, slots=True)
class BudgetView:
    """Passed to `Router.decide`: remaining fractions and the soft/hard actions in force."""

    remaining: dict[str, float] = field(default_factory=dict)  # budget name -> fraction left
    raise_threshold_by: float = 0.0
    force_small: bool = False
    cap_max_tokens: bool = False
    free_only: bool = False
    note: str = ""  # why, for the route reason

    def threshold(self, base: float) -> float:
        return min(1.0, base + self.raise_threshold_by)


def standings(lines: list[Line], flat: list[int]) -> list[Standing]:
    return [
        Standing(ln, from_nano(flat[2 * i]), from_nano(flat[2 * i + 1]))
        for i, ln in enumerate(lines)
    ]


def tightest(stands: list[Standing]) -> Standing | None:
    return min(stands, key=lambda s: (s.fraction_left, s.remaining), default=None)


def evaluate(team: Team, stands: list[Standing]) -> BudgetView:
    """Soft and hard states from a snapshot. Raises the 429 when the hard action is refuse."""
    remaining = {s.line.name: s.fraction_left for s in stands}
    low = tightest(stands)
    if low is None:
        return BudgetView(remaining)
    if low.remaining <= 0:
        if team.policy.hard.action == "refuse":
            raise quota_error(team, low, None)
        note = f"{low.line.name} exhausted: $0 models only"
        return BudgetView(remaining, free_only=True, note=note)
    soft = team.policy.soft
    if soft is None or 1 - low.fraction_left < soft.at:
        return BudgetView(remaining)
    note = f"{low.line.name} {1 - low.fraction_left:.0%} spent (soft limit {soft.at:.0%})"
    return BudgetView(
        remaining,
        raise_threshold_by=soft.raise_threshold_by if "raise_threshold" in soft.actions else 0.0,
        force_small="force_small_tier" in soft.actions,
        cap_max_tokens="cap_max_tokens" in soft.actions,
        note=note,
    )


def quota_error(team: Team, s: Standing, need: Decimal | None) -> InsufficientQuota:
    w = s.line.window
    left = max(Decimal(0), s.remaining)
    msg = f"Budget exceeded: {s.line.label(team.name)} has {usd(left)} left"
    if need is not None:
        msg += f", less than this request's worst-case cost of {usd(need)}"
    if w.end is not None:
        msg += f"; it resets at {w.end.isoformat()} ({team.tz.key})."
        msg += " Lower max_tokens, use a cheaper model, or wait for the reset."
    else:
        msg += "; it is a lifetime cap and does not reset. Ask an administrator to raise it."
    headers = {"x-frugal-budget-remaining-usd": str(left.quantize(Decimal("0.00000001"))),
               "x-frugal-budget": s.line.name}  # fmt: skip
    if w.end is not None:
        headers["x-frugal-budget-resets-at"] = w.end.isoformat()
    return InsufficientQuota(msg, headers=headers)
