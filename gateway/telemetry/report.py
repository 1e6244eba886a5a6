"""`frugal report --team T --period month [--png FILE]`: a team's spend and savings in the
terminal, and optionally a plot of daily spend and savings.

The figures come from the budget ledger (the same data as `frugal spend`): from Redis (the
configuration's redis_url) or from a running gateway's admin API (--url)."""

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any


@dataclass
class Totals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    savings: Decimal = Decimal(0)

    def add(self, row: dict[str, Any]) -> None:
        self.requests += int(row["requests"])
        self.prompt_tokens += int(row["prompt_tokens"])
        self.completion_tokens += int(row["completion_tokens"])
        self.cost += Decimal(str(row["cost_usd"]))
        self.savings += Decimal(str(row["savings_usd"]))

    @property
    def baseline(self) -> Decimal:
        """What the same requests would have cost on their routes' large models."""
        return self.cost + self.savings


@dataclass
class Summary:
    total: Totals = field(default_factory=Totals)
    by_day: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    by_model: dict[tuple[str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))


def summarize(rows: Iterable[dict[str, Any]]) -> Summary:
    s = Summary()
    for r in rows:
        s.total.add(r)
        s.by_day[str(r["day"])].add(r)
        s.by_model[(str(r["model"]), str(r["tier"]))].add(r)
    return s


def _usd(d: Decimal) -> str:
    return f"${d:,.4f}"


def render(team: str, period: str, tz: str, s: Summary) -> str:
    t = s.total
    share = f"{t.savings / t.baseline:.1%}" if t.baseline else "-"
    lines = [
        f"Frugal report: team {team}, this {period} ({tz})",
        f"  requests   {t.requests:,}",
        f"  tokens     {t.prompt_tokens:,} in, {t.completion_tokens:,} out",
        f"  spend      {_usd(t.cost)}",
        f"  savings    {_usd(t.savings)} ({share} of {_usd(t.baseline)}, the cost with every "
        "request on its route's large model)",
        "",
        "  by model                      tier      requests        spend      savings",
    ]
    for (model, tier), m in sorted(s.by_model.items(), key=lambda kv: -kv[1].cost):
        lines.append(f"  {model:<29} {tier:<7} {m.requests:>10,} {_usd(m.cost):>12} "
                     f"{_usd(m.savings):>12}")  # fmt: skip
    lines += ["", "  by day        requests        spend      savings"]
    for day, d in sorted(s.by_day.items()):
        lines.append(f"  {day}  {d.requests:>10,} {_usd(d.cost):>12} {_usd(d.savings):>12}")
    return "\n".join(lines)


def plot(team: str, period: str, s: Summary, path: Path) -> None:
    """Daily spend and savings as bars, with the running totals as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = sorted(s.by_day)
    spend = [float(s.by_day[d].cost) for d in days]
    saved = [float(s.by_day[d].savings) for d in days]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    xs = list(range(len(days)))
    ax.bar([x - 0.2 for x in xs], spend, width=0.4, label="spend (USD)", color="#d62728")
    ax.bar([x + 0.2 for x in xs], saved, width=0.4, label="savings (USD)", color="#2ca02c")
    ax.set_xticks(xs, days, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("USD per day")
    ax.set_title(f"Frugal: team {team}, this {period}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from gateway.budget.cli import add_ledger_args

    r = sub.add_parser("report", help="spend and savings summary for a team (--png: a plot)")
    add_ledger_args(r)
    r.add_argument("--png", type=Path, help="also write a plot of daily spend and savings")
    r.set_defaults(fn=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from gateway.budget.cli import read_ledger  # the ledger, as `frugal spend` reads it

    data = read_ledger(args)
    if data is None:
        return 2
    s = summarize(data["rows"])
    print(render(args.team, args.period, str(data.get("timezone", "UTC")), s))
    if args.png:
        if not s.by_day:
            print(f"frugal: no spend for team {args.team} this {args.period}; no plot written",
                  file=sys.stderr)  # fmt: skip
            return 0
        plot(args.team, args.period, s, args.png)
        print(f"plot written to {args.png}", file=sys.stderr)
    return 0
