"""The FastAPI app: models, health, admin and metrics endpoints, error shapes and the runtime's
lifespan. The generation endpoints are served in front of it (gateway/front.py)."""

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.admin_auth import admin_gate
from gateway.apis.stored import router as stored_responses_router
from gateway.auth import authenticate
from gateway.budget.admin import router as admin_router
from gateway.cache.admin import router as cache_admin_router
from gateway.config import Settings
from gateway.errors import FrugalError
from gateway.front import Front, internal_error_body
from gateway.learning.admin import router as learning_admin_router
from gateway.learning.feedback import router as feedback_router
from gateway.middleware import current_request_id
from gateway.runtime import Runtime
from gateway.telemetry.endpoint import router as metrics_router

log = logging.getLogger("frugal")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


_frozen = False


def freeze_startup_objects() -> None:
    """Once per process, after the first start-up: what start-up built (configuration, price
    map, router, clients; ~100,000 objects) lives as long as the process, so it is moved out of
    the garbage collector's generations (gc.freeze). Without it every full collection walks
    them all: a ~50 ms pause every ~3,000 requests, ~18 us per request at 16 clients."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings) -> Front:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.rt = await Runtime.start(settings)
        freeze_startup_objects()
        try:
            yield
        finally:
            await app.state.rt.close()

    app = FastAPI(title="Frugal", lifespan=lifespan, docs_url=None, redoc_url=None)
    _errors(app)
    _routes(app, settings)
    # /admin/ has its own key (budget.admin_key_env), checked before anything else; neither it nor
    # /metrics is described in /openapi.json, which only lists what every client may call.
    gate = [Depends(admin_gate)]
    app.include_router(admin_router, include_in_schema=False, dependencies=gate)
    app.include_router(cache_admin_router, include_in_schema=False, dependencies=gate)
    app.include_router(learning_admin_router, include_in_schema=False, dependencies=gate)
    app.include_router(feedback_router)  # POST /v1/feedback (gateway/learning/feedback.py)
    app.include_router(stored_responses_router)  # GET/DELETE /v1/responses/{id}
    # /metrics: the admin key unless telemetry.metrics_open
    app.include_router(metrics_router, include_in_schema=False)
    return Front(app, settings)  # serves the generation endpoints itself (gateway/front.py)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(FrugalError)
    async def frugal_error(request: Request, exc: FrugalError) -> Response:
        headers = {"x-request-id": current_request_id(), **exc.headers}
        return json_response(exc.body(), exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        body = {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                          "code": code}}  # fmt: skip
        return json_response(body, exc.status_code, {"x-request-id": current_request_id()})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in err.get("loc", ())[1:]) or None
        msg = f"Invalid request: {param}: {err.get('msg', 'invalid')}"
        body = {"error": {"message": msg, "type": "invalid_request_error", "param": param,
                          "code": None}}  # fmt: skip
        return json_response(body, 400, {"x-request-id": current_request_id()})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("internal error request_id=%s", current_request_id())
        body = internal_error_body(current_request_id())
        return json_response(body, 500, {"x-request-id": current_request_id()})


def _routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        rt: Runtime = request.app.state.rt
        authenticate(rt, request.headers.get("authorization"), request.scope)
        now = int(time.time())
        data: list[dict[str, Any]] = [
            {"id": name, "object": "model", "created": now, "owned_by": "frugal",
             "frugal": {"type": "route", "tiers": [t.value for t in r.tiers],
                        "router": r.router, "threshold": r.threshold}}
            for name, r in settings.routes.items()
        ]  # fmt: skip
        data += [
            {"id": name, "object": "model", "created": now, "owned_by": m.provider,
             "frugal": {"type": "model", "kind": m.kind, "tier": m.tier.value,
                        "available": name not in rt.router.unavailable,
                        "price_per_mtok": {"input": str(m.price.input_per_mtok),
                                           "output": str(m.price.output_per_mtok)}}}
            for name, m in settings.models.items()
        ]  # fmt: skip
        return json_response({"object": "list", "data": data})

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        rt: Runtime = request.app.state.rt
        store_ok = await rt.store.ping()
        # Upstream probes are cached (server.readyz_cache_s), one round at a time.
        upstreams = await rt.readiness.upstreams(rt.providers, rt.router.unavailable)
        # Under fail_open a replica serves through a store outage (budgets from its bounded
        # local allowance, the cache bypassed): it stays ready, marked degraded, so an
        # orchestrator does not pull every replica at once. Under fail_closed it refuses.
        serves_without_store = rt.settings.budget.on_store_error == "fail_open"
        ok = (store_ok or serves_without_store) and any(v == "ok" for v in upstreams.values())
        status = "ready" if ok and store_ok else "degraded" if ok else "not ready"
        body = {
            "status": status,
            "store": {"kind": rt.store.kind, "ok": store_ok},
            "upstreams": upstreams,
        }
        return json_response(body, 200 if ok else 503)
