"""The admin key check shared by every /admin/ endpoint (and /metrics unless it is open).

The key is read from the environment variable named by `budget.admin_key_env` (default
FRUGAL_ADMIN_KEY); the admin API is disabled (403) while it is unset."""

import hmac
import os
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from gateway.errors import AuthenticationFailed, PermissionDenied


def require_admin(request: Request) -> Any:
    """The request's Runtime, once its bearer token matches the admin key."""
    rt = request.app.state.rt
    env = rt.settings.budget.admin_key_env
    expected = os.environ.get(env)
    if not expected:
        raise PermissionDenied(f"The admin API is disabled: set {env} on the gateway.")
    scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
    # Bytes, not str: compare_digest refuses non-ASCII str (a TypeError, a 500). The header came
    # in as bytes read as latin-1; the key from the environment is UTF-8.
    given = key.strip().encode("latin-1", "replace")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, _utf8(expected)):
        raise AuthenticationFailed("Invalid admin key.")
    return rt


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")  # the environment's own bytes


async def admin_gate(request: Request) -> None:
    """`require_admin` as a router dependency: FastAPI runs it before it validates the
    endpoint's parameters, so a caller without the key learns nothing from a 400."""
    require_admin(request)


def json_response(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
