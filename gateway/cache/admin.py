"""Admin endpoints for the cache, behind the admin key (the variable named by
`budget.admin_key_env`, default FRUGAL_ADMIN_KEY, as for the rest of /admin/).

    DELETE /admin/cache/teams/{team}   purge a team's entries (exact and semantic)
    DELETE /admin/cache/shared         purge the shared scope
    GET    /admin/cache/stats          hit/miss/error counters of this replica"""

import hmac
import os
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.cache.policy import SHARED_SCOPE, team_scope
from gateway.errors import AuthenticationFailed, PermissionDenied

router = APIRouter(prefix="/admin/cache")


def _check(request: Request) -> Any:
    rt = request.app.state.rt
    env = rt.settings.budget.admin_key_env
    expected = os.environ.get(env)
    if not expected:
        raise PermissionDenied(f"The admin API is disabled: set {env} on the gateway.")
    scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), expected):
        raise AuthenticationFailed("Invalid admin key.")
    return rt


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


@router.delete("/teams/{team}")
async def purge_team(request: Request, team: str) -> Response:
    rt = _check(request)
    deleted = await rt.cache.purge(team_scope(team))
    return _json({"team": team, "deleted": deleted})


@router.delete("/shared")
async def purge_shared(request: Request) -> Response:
    rt = _check(request)
    deleted = await rt.cache.purge(SHARED_SCOPE)
    return _json({"scope": SHARED_SCOPE, "deleted": deleted})


@router.get("/stats")
async def stats(request: Request) -> Response:
    rt = _check(request)
    return _json(rt.cache.stats())
