"""GET /metrics: the Prometheus exposition. It needs the admin key (the same variable as the
/admin/ API, `budget.admin_key_env`) unless `telemetry.metrics_open: true`."""

import hmac
import os

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.errors import AuthenticationFailed, NotFound, PermissionDenied

router = APIRouter()


def _authorize(request: Request) -> None:
    rt = request.app.state.rt
    if rt.settings.telemetry.metrics_open:
        return
    env = rt.settings.budget.admin_key_env
    expected = os.environ.get(env)
    if not expected:
        raise PermissionDenied(
            f"/metrics needs the admin key: set {env} on the gateway (and give Prometheus the "
            "key), or set telemetry.metrics_open: true."
        )
    scheme, _, key = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), expected):
        raise AuthenticationFailed("Invalid admin key.")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    rt = request.app.state.rt
    if rt.telemetry.prom is None:
        raise NotFound("Prometheus metrics are off (telemetry.prometheus: false).")
    _authorize(request)
    body = await rt.telemetry.metrics_text(rt.store, rt.budget.enforcer.policies)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
