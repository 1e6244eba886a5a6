"""Spend data per team, key id, model, tier and day: requests, tokens, cost and savings, read
from the ledger that `settle` writes. Keys never appear, only their public ids."""

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from gateway.budget import layout
from gateway.budget.money import from_nano
from gateway.budget.periods import days
from gateway.policies import Period
from gateway.store.base import Store

CLASSES = ("cached_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(slots=True)
class Row:
    team: str
    day: date
    key_id: str
    model: str
    tier: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    savings_usd: Decimal = Decimal(0)
    # Token classes (parts of prompt_tokens / completion_tokens): read from the provider's
    # cache, written to it, and reasoning.
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["day"] = self.day.isoformat()
        d["cost_usd"] = str(self.cost_usd)
        d["savings_usd"] = str(self.savings_usd)
        return d


def parse_day(team: str, day: date, raw: dict[bytes, bytes]) -> list[Row]:
    rows: dict[tuple[str, str, str], Row] = {}
    for f, v in raw.items():
        key_id, model, tier, metric = f.decode().rsplit("|", 3)
        row = rows.setdefault((key_id, model, tier), Row(team, day, key_id, model, tier))
        n = int(v)
        if metric == "cost_nano":
            row.cost_usd = from_nano(n)
        elif metric == "savings_nano":
            row.savings_usd = from_nano(n)
        elif metric in ("requests", "prompt_tokens", "completion_tokens", *CLASSES):
            setattr(row, metric, n)
    return sorted(rows.values(), key=lambda r: (r.key_id, r.model, r.tier))


async def report(store: Store, team: str, tz: ZoneInfo, period: Period, now: datetime) -> list[Row]:
    out: list[Row] = []
    for day in days(period, now, tz):
        raw = await store.hgetall(layout.spend(team, day))
        if raw:
            out += parse_day(team, day, raw)
    return out


def totals(rows: list[Row]) -> dict[str, Any]:
    return {
        "requests": sum(r.requests for r in rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        **{c: sum(getattr(r, c) for r in rows) for c in CLASSES},
        "cost_usd": str(sum((r.cost_usd for r in rows), Decimal(0))),
        "savings_usd": str(sum((r.savings_usd for r in rows), Decimal(0))),
    }


COLUMNS = ["team", "day", "key_id", "model", "tier", "requests", "prompt_tokens",
           "completion_tokens", "cost_usd", "savings_usd", *CLASSES]  # fmt: skip


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r[c] for c in COLUMNS})
    return buf.getvalue()
