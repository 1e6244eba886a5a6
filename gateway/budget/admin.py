"""The admin API under /admin/ (its own key, read from `budget.admin_key_env`): spend data,
budget standings, store health, policy reload. Keys never appear, only key ids."""

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.admin_auth import json_response, require_admin
from gateway.budget import spend
from gateway.budget.lines import budget_lines
from gateway.budget.money import from_nano
from gateway.errors import NotFound

router = APIRouter(prefix="/admin")


@router.get("/spend")
async def get_spend(
    request: Request, team: str,
    period: Literal["day", "week", "month", "lifetime"] = "month",
    format: Literal["json", "csv"] = "json",
) -> Response:  # fmt: skip
    rt = require_admin(request)
    budget = rt.budget.enforcer
    pol = budget.policies.team(team)
    tz = pol.tz if pol else budget.default_tz
    rows = await spend.report(rt.store, team, tz, period, datetime.now(UTC))
    data = [r.as_json() for r in rows]
    if format == "csv":
        return Response(spend.to_csv(data), media_type="text/csv")
    return json_response({"team": team, "period": period, "timezone": tz.key, "rows": data,
                  "totals": spend.totals(rows)})  # fmt: skip


@router.get("/budgets")
async def get_budgets(request: Request, team: str, key_id: str | None = None) -> Response:
    rt = require_admin(request)
    pol = rt.budget.enforcer.policies.team(team)
    if pol is None:
        raise NotFound(f"No policy for team {team!r}.")
    await rt.budget.enforcer.sweep(team)  # expired holds are given back before they are shown
    out = []
    for ln in budget_lines(pol, key_id, datetime.now(UTC)):
        h = await rt.store.hgetall(ln.store_key)
        spent, held = from_nano(int(h.get(b"spent", 0))), from_nano(int(h.get(b"reserved", 0)))
        out.append({"budget": ln.name, "period": ln.window.period, "window": ln.window.id,
                    "limit_usd": str(ln.limit), "spent_usd": str(spent),
                    "reserved_usd": str(held), "remaining_usd": str(ln.limit - spent - held),
                    "resets_at": ln.window.end.isoformat() if ln.window.end else None})  # fmt: skip
    return json_response({"team": team, "timezone": pol.tz.key, "budgets": out})


@router.get("/budget/status")
async def status(request: Request) -> Response:
    rt = require_admin(request)
    b, w = rt.budget.enforcer, rt.budget.watcher
    return json_response({
        "store": rt.store.kind, "on_store_error": rt.settings.budget.on_store_error,
        "degraded": b.guard.degraded, "store_failures": b.guard.failures,
        "reconciled": b.guard.reconciled, "journal": len(b.guard.journal),
        "replays_dropped": b.guard.replays_dropped, "teams": sorted(b.policies.teams),
        "policy_reloads": w.reloads, "policy_reloads_refused": w.refused,
        "alerts_sent": b.alerts.sent,
    })  # fmt: skip


@router.post("/policies/reload")
async def reload(request: Request) -> Response:
    rt = require_admin(request)
    ok = rt.budget.watcher.reload()
    return json_response({"reloaded": ok, "teams": sorted(rt.budget.enforcer.policies.teams)})
