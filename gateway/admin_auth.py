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
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), expected):
        raise AuthenticationFailed("Invalid admin key.")
    return rt


def json_response(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
