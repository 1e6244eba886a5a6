"""Which translator serves which client API, the key header each API's clients send, and errors
in each API's shape. The front (gateway/front.py) reads the body and authenticates, then hands
a bridged endpoint's call to `serve`."""

from collections.abc import Mapping
from typing import Any

from gateway import pipeline
from gateway.apis import messages, responses
from gateway.call import Call
from gateway.providers.base import Endpoint
from gateway.providers.native import FORWARDED, forwarded
from gateway.runtime import Runtime
from gateway.streaming import StreamReply

PATHS = {
    "/v1/messages": Endpoint.messages,
    "/v1/messages/count_tokens": Endpoint.count_tokens,
    "/v1/responses": Endpoint.responses,
}
BRIDGED = frozenset(PATHS.values())
ANTHROPIC = frozenset({Endpoint.messages, Endpoint.count_tokens})
# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error",
}  # fmt: skip


async def serve(
    rt: Runtime, call: Call, headers: Mapping[str, str] | None = None
) -> pipeline.Reply | StreamReply:
    if headers is not None:  # for an Anthropic upstream: anthropic-version, anthropic-beta
        FORWARDED.set(forwarded(headers))
    if call.endpoint is Endpoint.count_tokens:
        return await messages.count(rt, call)
    if call.endpoint is Endpoint.messages:
        return await messages.serve(rt, call)
    return await responses.serve(rt, call)


def authorization(headers: Mapping[str, str]) -> str | None:
    """The Authorization header, or the Anthropic SDK's `x-api-key` as a bearer key."""
    header = headers.get("authorization")
    if header is None and headers.get("x-api-key"):
        return f"Bearer {headers['x-api-key']}"
    return header


def error_body(endpoint: Endpoint, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped error body, or Anthropic's `{"type": "error", "error": ...}` shape on
    the Messages endpoints."""
    if endpoint not in ANTHROPIC:
        return body
    err = body.get("error") or {}
    kind = ANTHROPIC_TYPES.get(status, "api_error")
    if err.get("type") == "insufficient_quota":  # a spent budget: not worth retrying soon
        kind = "billing_error"
    return {"type": "error", "error": {"type": kind, "message": str(err.get("message", ""))}}
