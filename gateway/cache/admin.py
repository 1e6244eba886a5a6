"""Admin endpoints for the cache, behind the admin key (the variable named by
`budget.admin_key_env`, default FRUGAL_ADMIN_KEY, as for the rest of /admin/).

    DELETE /admin/cache/teams/{team}   purge a team's entries (exact and semantic)
    DELETE /admin/cache/shared         purge the shared scope
    GET    /admin/cache/stats          hit/miss/error counters of this replica"""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.admin_auth import json_response, require_admin
from gateway.cache.policy import SHARED_SCOPE, team_scope

router = APIRouter(prefix="/admin/cache")


@router.delete("/teams/{team}")
async def purge_team(request: Request, team: str) -> Response:
    rt = require_admin(request)
    deleted = await rt.cache.purge(team_scope(team))
    return json_response({"team": team, "deleted": deleted})


@router.delete("/shared")
async def purge_shared(request: Request) -> Response:
    rt = require_admin(request)
    deleted = await rt.cache.purge(SHARED_SCOPE)
    return json_response({"scope": SHARED_SCOPE, "deleted": deleted})


@router.get("/stats")
async def stats(request: Request) -> Response:
    rt = require_admin(request)
    return json_response(rt.cache.stats())
