"""HTTP layer: thin handlers that parse, authenticate and hand over to the pipeline."""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import pipeline
from gateway.budget.admin import router as admin_router
from gateway.cache.admin import router as cache_admin_router
from gateway.cache.controls import directives as cache_directives
from gateway.call import Call
from gateway.config import Settings
from gateway.errors import AuthenticationFailed, FrugalError, InvalidRequest, PayloadTooLarge
from gateway.keys import Principal, key_id_of
from gateway.middleware import RequestIdMiddleware, current_request_id
from gateway.providers.base import Endpoint
from gateway.record import record
from gateway.runtime import Runtime
from gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest, validate
from gateway.streaming import StreamReply
from gateway.telemetry.endpoint import router as metrics_router

log = logging.getLogger("frugal")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    buf = bytearray()
    async for part in request.stream():
        buf += part
        if len(buf) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    try:
        return orjson.loads(buf)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e.msg}.") from None


def authenticate(rt: Runtime, request: Request) -> Principal:
    header = request.headers.get("authorization")
    scheme, _, key = (header or "").partition(" ")
    anonymous = rt.settings.auth.anonymous_team
    if anonymous and key_id_of(key.strip()) is None:
        # Anonymous mode (loopback only): clients that must send some key (the openai SDK
        # does) may send any non-Frugal string; a Frugal key is still checked.
        return Principal(anonymous, None)
    if header is None:
        raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <key>`.")
    principal = rt.keys.verify(key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise AuthenticationFailed("Invalid API key.")
    return principal


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.rt = await Runtime.start(settings)
        try:
            yield
        finally:
            await app.state.rt.close()

    app = FastAPI(title="Frugal", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(RequestIdMiddleware)
    _errors(app)
    _routes(app, settings)
    app.include_router(admin_router)  # /admin/: its own key (budget.admin_key_env)
    app.include_router(cache_admin_router)  # /admin/cache/: the same admin key
    app.include_router(metrics_router)  # /metrics: the admin key unless telemetry.metrics_open
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(FrugalError)
    async def frugal_error(request: Request, exc: FrugalError) -> Response:
        headers = {"x-request-id": current_request_id(), **exc.headers}
        call = getattr(request.state, "call", None)
        if isinstance(call, Call):
            headers.update(call.headers())
            call.outcome = type(exc).__name__
            record(call)
        return json_response(exc.body(), exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        msg = f"{request.method} {request.url.path}: {exc.detail}"
        body = {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                          "code": code}}  # fmt: skip
        return json_response(body, exc.status_code, {"x-request-id": current_request_id()})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("internal error request_id=%s", current_request_id())
        call = getattr(request.state, "call", None)
        if isinstance(call, Call):
            call.outcome = "internal_error"
            record(call)
        msg = f"Internal error (request id {current_request_id()})."
        body = {"error": {"message": msg, "type": "api_error", "param": None,
                          "code": "internal_error"}}  # fmt: skip
        return json_response(body, 500, {"x-request-id": current_request_id()})


def _routes(app: FastAPI, settings: Settings) -> None:
    limit = settings.server.max_body_bytes

    async def generation(request: Request, endpoint: Endpoint) -> Response:
        rt: Runtime = request.app.state.rt
        body = await read_json(request, limit)
        principal = authenticate(rt, request)
        req: ChatRequest | CompletionRequest
        if endpoint is Endpoint.chat:
            req = validate(ChatRequest, body)
        else:
            req = validate(CompletionRequest, body)
        call = Call(current_request_id(), principal, endpoint, body)
        call.cache_read, call.cache_write = cache_directives(request.headers)
        request.state.call = call
        reply = await pipeline.generate(rt, call, req)
        if isinstance(reply, StreamReply):
            return StreamingResponse(
                reply.chunks, media_type="text/event-stream",
                headers={**reply.headers, "cache-control": "no-cache"},
            )  # fmt: skip
        return json_response(reply.body, headers=reply.headers)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await generation(request, Endpoint.chat)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generation(request, Endpoint.completions)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        rt: Runtime = request.app.state.rt
        body = await read_json(request, limit)
        principal = authenticate(rt, request)
        req = validate(EmbeddingRequest, body)
        call = Call(current_request_id(), principal, Endpoint.embeddings, body)
        request.state.call = call
        reply = await pipeline.embed(rt, call, req)
        return json_response(reply.body, headers=reply.headers)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        rt: Runtime = request.app.state.rt
        authenticate(rt, request)
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
        upstreams = {}
        for name, p in rt.providers.items():
            if name in rt.router.unavailable:
                upstreams[name] = "disabled"
            else:
                upstreams[name] = "ok" if await p.ready() else "unreachable"
        ok = store_ok and any(v == "ok" for v in upstreams.values())
        body = {
            "status": "ready" if ok else "not ready",
            "store": {"kind": rt.store.kind, "ok": store_ok},
            "upstreams": upstreams,
        }
        return json_response(body, 200 if ok else 503)
