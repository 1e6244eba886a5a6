"""GET /metrics: the Prometheus exposition. It needs the admin key (the /admin/ API's check,
`gateway.admin_auth`) unless `telemetry.metrics_open: true`."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.admin_auth import require_admin
from gateway.errors import NotFound

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    rt = request.app.state.rt
    if rt.telemetry.prom is None:
        raise NotFound("Prometheus metrics are off (telemetry.prometheus: false).")
    if not rt.settings.telemetry.metrics_open:
        require_admin(request)
    body = await rt.telemetry.metrics_text(rt.store, rt.budget.enforcer.policies)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
