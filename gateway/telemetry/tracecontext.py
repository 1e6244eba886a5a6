"""W3C trace context (https://www.w3.org/TR/trace-context/): the gateway's spans join the
caller's trace when it sends a `traceparent`, and each upstream attempt is sent a `traceparent`
naming that attempt's span, so an instrumented upstream (vLLM, a model service) continues the
same trace.

Spans are written once the request is finished (spans.py), so the ids an upstream is told are
chosen here first, when the request arrives."""

import random
from contextvars import ContextVar
from dataclasses import dataclass

_HEX = frozenset("0123456789abcdef")
# The `traceparent` for the upstream attempt being made (set around each attempt).
UPSTREAM_TRACEPARENT: ContextVar[str | None] = ContextVar("upstream_traceparent", default=None)


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: int
    parent_id: int | None  # the caller's span, when it sent a `traceparent`
    sampled: bool


def parse_traceparent(header: str | None) -> Trace | None:
    """`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (later versions: the same first
    four fields); None for anything else, as the spec says to ignore an invalid header."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) < 4 or [len(p) for p in parts[:4]] != [2, 32, 16, 2]:
        return None
    version, trace, span, flags = parts[:4]
    if not _HEX.issuperset(version + trace + span + flags) or version == "ff":
        return None
    if version == "00" and len(parts) != 4:
        return None
    trace_id, span_id = int(trace, 16), int(span, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return Trace(trace_id, span_id, bool(int(flags, 16) & 1))


def start_trace(header: str | None, sample_ratio: float) -> Trace:
    """The caller's trace and sampling decision, or a new trace sampled at `sample_ratio`."""
    caller = parse_traceparent(header)
    if caller is not None:
        return caller
    sampled = sample_ratio >= 1.0 or random.random() < sample_ratio  # noqa: S311 - sampling
    return Trace(random.getrandbits(128) or 1, None, sampled)


def new_span_id() -> int:
    return random.getrandbits(64) or 1


def traceparent(trace: Trace, span_id: int) -> str:
    return f"00-{trace.trace_id:032x}-{span_id:016x}-{'01' if trace.sampled else '00'}"
