"""Whose fault an upstream failure is: the model's (it is down, slow, overloaded or
misconfigured: every team would meet it) or the request's (a 4xx the request caused: invalid,
too long for the context, refused by a content filter). Only the model's faults cool it down
(resilience.py): one team's bad input must not take a model away from every team."""

from typing import Any

from gateway.errors import UpstreamError, UpstreamRejected
from gateway.providers.limit import BUSY

# Error codes and types that name the request as the cause, as OpenAI, vLLM and llama.cpp
# write them in an error event inside a stream (which arrives with HTTP 200).
_REQUEST_CODES = frozenset({
    "context_length_exceeded", "content_filter", "content_policy_violation",
    "invalid_request_error", "exceed_context_size_error", "string_above_max_length",
    "BadRequestError",
})  # fmt: skip


def upstream_at_fault(error: UpstreamError) -> bool:
    """5xx, 429, timeouts and connection errors (no status), and 401/403/404 (our own
    credentials or model id): yes. Any other 4xx: the request's fault, not the model's."""
    if isinstance(error, UpstreamRejected) or error.code == BUSY:
        return False  # the request's fault, or our own connection bound (providers/limit.py)
    status = error.upstream_status
    return status is None or status >= 500 or status in (401, 403, 404, 408, 429)


def stream_error_status(event: dict[str, Any]) -> int | None:
    """The HTTP status an error event inside a stream stands for, when it says: an integer
    `code` (vLLM, llama.cpp), or a code or type naming the request (OpenAI) as 400."""
    err = event.get("error")
    if not isinstance(err, dict):
        return None
    code = err.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if code in _REQUEST_CODES or err.get("type") in _REQUEST_CODES:
        return 400
    return None
