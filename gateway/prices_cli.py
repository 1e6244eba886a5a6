"""`frugal prices`: every configured model's effective prices (USD per million tokens, each
token class resolved to the rate it is billed at) and where they came from (the
configuration, or litellm's bundled map and its entry)."""

import argparse
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateway.config import ConfigError, ModelConfig, load_settings
from gateway.pricing import rates

COLUMNS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")


def describe(name: str, m: ModelConfig) -> dict[str, Any]:
    p = m.price
    base = rates(p, 0)
    out: dict[str, Any] = {
        "model": name,
        "upstream_model": m.model,
        "source": p.source,
        "per_mtok": {c: str(getattr(base, c)) for c in COLUMNS},
    }
    tiers = []
    for t in p.long_context:
        r = rates(p, t.above_tokens + 1)
        tiers.append({"above_tokens": t.above_tokens,
                      "per_mtok": {c: str(getattr(r, c)) for c in COLUMNS}})  # fmt: skip
    if tiers:
        out["long_context"] = tiers
    if p.service_tiers:
        out["service_tiers"] = {k: str(v) for k, v in p.service_tiers.items()}
    if p.batch_discount:
        out["batch_discount"] = str(p.batch_discount)
    return out


def _fmt(v: str) -> str:
    d = Decimal(v)
    return format(d.normalize(), "f") if d else "0"


def render(rows: list[dict[str, Any]]) -> str:
    head = ("model", "input", "cached", "write5m", "write1h", "output", "reason", "source")
    table: list[tuple[str, ...] | str] = [head]  # a str: a note line under its model
    for r in rows:
        pm = r["per_mtok"]
        table.append((r["model"], *(_fmt(pm[c]) for c in COLUMNS), r["source"]))
        for t in r.get("long_context", ()):
            pm = t["per_mtok"]
            table.append((f"  > {t['above_tokens']:,}", *(_fmt(pm[c]) for c in COLUMNS), ""))
        extras = [f"{k} x{_fmt(v)}" for k, v in r.get("service_tiers", {}).items()]
        if "batch_discount" in r:
            extras.append(f"batch -{Decimal(r['batch_discount']) * 100:.0f}%")
        if extras:
            table.append("  service tiers: " + ", ".join(extras))
    cells = [row for row in table if isinstance(row, tuple)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = []
    for row in table:
        if isinstance(row, str):
            lines.append(row)
            continue
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 7) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return "USD per million tokens (> N: the rates once a prompt exceeds N tokens)\n" + "\n".join(
        lines
    )


def cmd_prices(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(Path(args.config) if args.config else None)
    except ConfigError as e:
        print(f"frugal: {e}", file=sys.stderr)
        return 2
    rows = [describe(n, m) for n, m in settings.models.items()]
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(rows))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("prices", help="each configured model's effective prices and their source")
    p.add_argument("--config", help="YAML configuration (default: FRUGAL_CONFIG or the defaults)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(fn=cmd_prices)
