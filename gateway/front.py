"""The outermost ASGI app. The generation endpoints (chat and text completions, embeddings) are
served here directly; everything else (models, health, admin, metrics) goes to FastAPI.

FastAPI's routing, dependency solving, `Request` object and five middleware layers cost about
0.1 ms of CPU per request here, as much as the budget stage: the endpoints every LLM call goes
through skip them. Behaviour is the same as the FastAPI routes': OpenAI-shaped errors with the
request id, every failure recorded, SSE that notices a client that goes away (`send_sse`)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import unquote

import orjson
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from gateway import pipeline
from gateway.apis import bridge
from gateway.auth import authenticate
from gateway.cache.controls import directives as cache_directives
from gateway.call import Call
from gateway.config import Settings
from gateway.errors import FrugalError, InvalidRequest, PayloadTooLarge, RequestTimeout
from gateway.middleware import RequestIdMiddleware, request_id_from, use_request_id
from gateway.providers.base import Endpoint
from gateway.record import record
from gateway.runtime import Runtime
from gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest, validate
from gateway.streaming import StreamReply

log = logging.getLogger("frugal")
HOT = {
    "/v1/chat/completions": Endpoint.chat,
    "/v1/completions": Endpoint.completions,
    "/v1/embeddings": Endpoint.embeddings,
    **bridge.PATHS,  # Anthropic Messages, OpenAI Responses: translated at the edge
}
JSON = (b"content-type", b"application/json")
EXPECTED = "x-frugal-expected"  # URL-encoded UTF-8 (gateway/learning/README.md)
SSE = (b"content-type", b"text/event-stream; charset=utf-8")


class Front:
    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.rest = RequestIdMiddleware(app)
        self.limit = settings.server.max_body_bytes
        self.body_timeout_s = settings.server.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = HOT.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.rest(scope, receive, send)
        elif scope["method"] == "POST":
            with _in_flight(self.app):  # the label loop's background work waits meanwhile
                await self._serve(scope, receive, send, endpoint)
        else:
            rid = request_id_from(None)
            msg = f"{scope['method']} {scope['path']}: Method Not Allowed"
            body = {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                              "code": "method_not_allowed"}}  # fmt: skip
            await send_json(send, 405, body, {"allow": "POST"}, rid)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        rid = request_id_from(headers.get("x-request-id"))
        with use_request_id(rid):
            call: Call | None = None
            try:
                rt: Runtime = self.app.state.rt
                principal = authenticate(rt, bridge.authorization(headers), scope)  # first
                declared = headers.get("content-length")
                body = await read_body(receive, declared, self.limit, self.body_timeout_s)
                if not isinstance(body, dict):  # before a Call exists: telemetry reads its body
                    raise InvalidRequest("The request body must be a JSON object.")
                call = Call(rid, principal, endpoint, body)
                if EXPECTED in headers:  # a reference answer for the learning judge
                    call.expected = unquote(headers[EXPECTED])
                call.trace = rt.telemetry.trace_for(headers.get("traceparent"))
                reply: pipeline.Reply | StreamReply
                if endpoint is Endpoint.embeddings:
                    reply = await pipeline.embed(rt, call, validate(EmbeddingRequest, body))
                elif endpoint in bridge.BRIDGED:
                    call.cache_read, call.cache_write = cache_directives(headers)
                    reply = await bridge.serve(rt, call, headers)
                else:
                    req: ChatRequest | CompletionRequest
                    if endpoint is Endpoint.chat:
                        req = validate(ChatRequest, body)
                    else:
                        req = validate(CompletionRequest, body)
                    call.cache_read, call.cache_write = cache_directives(headers)
                    reply = await pipeline.generate(rt, call, req)
            except FrugalError as exc:
                out = {**exc.headers}
                if call is not None:
                    out.update(call.headers())
                    call.outcome = type(exc).__name__
                    record(call)
                error = bridge.error_body(endpoint, exc.status, exc.body())
                await send_json(send, exc.status, error, out, rid)
                return
            except Exception:
                log.exception("internal error request_id=%s", rid)
                if call is not None:
                    call.outcome = "internal_error"
                    record(call)
                error = bridge.error_body(endpoint, 500, internal_error_body(rid))
                await send_json(send, 500, error, {}, rid)
                return
            if isinstance(reply, StreamReply):
                out = {"x-request-id": rid, **reply.headers, "cache-control": "no-cache"}
                await send_sse(receive, send, reply.chunks, out)
                return
            await send_json(send, 200, reply.body, reply.headers, rid)


def _in_flight(app: FastAPI) -> AbstractContextManager[None]:
    """Counts a client request in flight on this worker (gateway/learning/in_flight.py)."""
    rt: Runtime | None = getattr(app.state, "rt", None)  # None before start-up: not counted
    return rt.learning.clients if rt is not None else nullcontext()


def internal_error_body(rid: str) -> dict[str, Any]:
    return {"error": {"message": f"Internal error (request id {rid}).", "type": "api_error",
                      "param": None, "code": "internal_error"}}  # fmt: skip


async def read_body(
    receive: Receive, declared: str | None, limit: int, timeout_s: float | None = None
) -> Any:
    """The request's JSON body, refused early when larger than `limit` bytes, and refused (408)
    unless all of it arrives within `timeout_s` seconds (a client trickling it holds a task)."""
    try:
        async with asyncio.timeout(timeout_s):
            raw = await _receive_body(receive, declared, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body did not arrive within {timeout_s:g} s (server.body_timeout_s)."
        ) from None
    return parse_json(raw)


async def _receive_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    too_large = f"The request body is larger than the limit of {limit} bytes."
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(too_large)
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":  # the client went away before sending it all
            raise InvalidRequest("The client disconnected before sending the whole body.")
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(too_large)
        chunks.append(part)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


MAX_DEPTH = 255  # what orjson can write back (to the upstream, the cache key): deeper is a 400


def parse_json(raw: bytes) -> Any:
    """JSON with at most MAX_DEPTH levels of nesting (orjson reads 1024 but writes 255)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e.msg}.") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # cheap test first: might be too deep
        try:
            orjson.dumps(body)
        except orjson.JSONEncodeError:
            raise InvalidRequest(
                f"The request body is nested more than {MAX_DEPTH} levels deep."
            ) from None
    return body


async def send_sse(
    receive: Receive, send: Send, chunks: AsyncIterator[bytes], headers: dict[str, str]
) -> None:
    """Relay `chunks` as an SSE response; a client that goes away cancels the relay (whose
    `finally` settles what was generated and closes the upstream stream).

    Starlette's StreamingResponse does the same with an anyio task group per stream; a watcher
    task of our own costs less."""
    raw = [SSE, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    relaying = asyncio.current_task()
    assert relaying is not None

    async def watch() -> None:  # finishes (rather than being cancelled) only if the client left
        while (await receive())["type"] != "http.disconnect":
            pass
        relaying.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        watcher.cancel()  # before the end of the body, after which `receive` says disconnect
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # cancelled by someone else (the server shutting down)
        relaying.uncancel()  # the client left: nothing more to send, nothing to raise
    except OSError:
        pass  # a server that reports a gone client on send (ASGI 2.4) rather than by receive
    finally:
        watcher.cancel()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # a relay left at a `yield` settles now (its `finally`)


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str], rid: str) -> None:
    payload = orjson.dumps(body)
    raw = [JSON, (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if "x-request-id" not in headers:
        raw.append((b"x-request-id", rid.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
