"""`frugal spend --team T --period month [--csv]`: spend per key id, model, tier and day, read
from Redis (the configuration's redis_url) or from a running gateway's admin API (--url)."""

import argparse
import asyncio
import json
import os
import sys
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.budget import spend
from gateway.config import ConfigError, Settings, load_settings
from gateway.policies import load_policies


def add_ledger_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that reads a team's spend ledger."""
    p.add_argument("--team", required=True, help="the team to report on")
    p.add_argument(
        "--period",
        choices=["day", "week", "month", "lifetime"],
        default="month",
        help="the budget period to cover",
    )
    p.add_argument("--config", help="YAML configuration (default: embedded defaults)")
    p.add_argument("--url", help="a running gateway (admin API; key from budget.admin_key_env)")


def read_ledger(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ledger rows for `args.team` and `args.period`, from Redis or a gateway's admin API;
    None (after saying why on stderr) when it cannot be read."""
    try:
        settings = load_settings(Path(args.config) if args.config else None)
        return _via_api(settings, args) if args.url else asyncio.run(_via_store(settings, args))
    except (ConfigError, OSError, RuntimeError) as e:
        print(f"frugal: {e}", file=sys.stderr)
        return None


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    s = sub.add_parser("spend", help="spend per key id, model, tier and day for a team")
    add_ledger_args(s)
    s.add_argument("--csv", action="store_true", help="CSV instead of a table")
    s.set_defaults(fn=cmd_spend)


def cmd_spend(args: argparse.Namespace) -> int:
    data = read_ledger(args)
    if data is None:
        return 2
    rows = data["rows"]
    if args.csv:
        sys.stdout.write(spend.to_csv(rows))
        return 0
    print(f"team {args.team}, {args.period} ({data.get('timezone', 'UTC')}): "
          f"{json.dumps(data['totals'])}")  # fmt: skip
    for r in rows:
        print(f"{r['day']}  key {r['key_id']:<12}  {r['model']:<20} {r['tier']:<6} "
              f"{r['requests']:>7} req {r['prompt_tokens']:>9} in {r['completion_tokens']:>9} out"
              f" ({r.get('cached_tokens', 0)} cached, {r.get('cache_write_tokens', 0)} cache"
              f" write; {r.get('reasoning_tokens', 0)} reasoning)"
              f"  ${r['cost_usd']:<14} saved ${r['savings_usd']}")  # fmt: skip
    return 0


def _via_api(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    key = os.environ.get(settings.budget.admin_key_env)
    if not key:
        raise RuntimeError(f"set {settings.budget.admin_key_env} to the gateway's admin key")
    q = urllib.parse.urlencode({"team": args.team, "period": args.period})
    req = urllib.request.Request(f"{args.url.rstrip('/')}/admin/spend?{q}",  # noqa: S310
                                 headers={"authorization": f"Bearer {key}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - an operator's own URL
        data: dict[str, Any] = json.loads(r.read())
    return data


async def _via_store(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    if not settings.redis_url:
        raise RuntimeError(
            "no redis_url configured: the in-process store lives inside the gateway; "
            "pass --url http://HOST:PORT to read its admin API"
        )
    from gateway.store.factory import open_store

    team = load_policies(
        settings.policies_dir, settings.budget.timezone, settings.budget.default_policy
    ).team(args.team)
    tz = team.tz if team else ZoneInfo(settings.budget.timezone)
    store = open_store(settings.redis_url, timeout_s=5, options=settings.store)
    try:
        rows = await spend.report(store, args.team, tz, args.period, datetime.now(UTC))
    finally:
        await store.close()
    return {"rows": [r.as_json() for r in rows], "totals": spend.totals(rows), "timezone": tz.key}
