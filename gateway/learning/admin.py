"""Admin API of the label loop and the router rollout (the admin key, like all of /admin/):

GET  /admin/router                      live router, shadow and history of each route
POST /admin/router/shadow    {"route", "router", "threshold"?}     run a candidate in shadow
POST /admin/router/promote   {"route", "router"?, "threshold"?, "force"?}
POST /admin/router/rollback  {"route"}
GET  /admin/learning                    queue, jobs running, counts, today's spend per route
GET  /admin/learning/labels?route=&team=&format=jsonl|raw   labels (jsonl: user-log lines)
"""

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.admin_auth import json_response, require_admin
from gateway.errors import InvalidRequest
from gateway.front import parse_json
from gateway.learning.labels import export_lines
from gateway.pricing import usd
from gateway.schemas import invalid

router = APIRouter(prefix="/admin")


class Switch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str = "auto"
    router: str | None = Field(default=None, min_length=1, max_length=500)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    force: bool = False


async def _switch(request: Request) -> tuple[Any, Switch]:
    rt = require_admin(request)
    raw = await request.body()
    try:
        return rt, Switch.model_validate(parse_json(raw) if raw.strip() else {})
    except ValidationError as e:
        raise invalid(e) from None


@router.get("/router")
async def router_status(request: Request) -> Response:
    rt = require_admin(request)
    return json_response(await rt.rollout.status())


@router.post("/router/shadow")
async def router_shadow(request: Request) -> Response:
    rt, body = await _switch(request)
    if body.router is None:
        raise InvalidRequest("Name the router to run in shadow.", param="router")
    return json_response(await rt.rollout.shadow(body.route, body.router, body.threshold))


@router.post("/router/promote")
async def router_promote(request: Request) -> Response:
    rt, body = await _switch(request)
    return json_response(
        await rt.rollout.promote(body.route, body.router, body.threshold, body.force)
    )


@router.post("/router/rollback")
async def router_rollback(request: Request) -> Response:
    rt, body = await _switch(request)
    return json_response(await rt.rollout.rollback(body.route))


@router.get("/learning")
async def learning_status(request: Request) -> Response:
    rt = require_admin(request)
    learning = rt.learning
    spent = {r: usd(await learning.budget.spent(r)) for r in learning.routes}
    budgets = {r: usd(c.daily_budget_usd) for r, c in learning.routes.items()}
    return json_response({"queued": learning.queue.qsize(), "running": learning.running,
                          "clients_in_flight": learning.clients.count,
                          "counts": dict(learning.counts),
                          "spent_today_usd": spent, "daily_budget_usd": budgets})  # fmt: skip


@router.get("/learning/labels")
async def learning_labels(
    request: Request, route: str | None = None, team: str | None = None, format: str = "jsonl"
) -> Response:
    rt = require_admin(request)
    if format not in ("jsonl", "raw"):
        raise InvalidRequest("format must be jsonl or raw", param="format")
    labels = await rt.learning.labels.all(team, route)
    rows = export_lines(labels)[0] if format == "jsonl" else labels
    text = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    return Response(text, media_type="application/x-ndjson")
