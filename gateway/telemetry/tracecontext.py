"""The caller's W3C trace context (`traceparent` request header), so that the gateway's spans
join the caller's trace instead of starting their own (https://www.w3.org/TR/trace-context/)."""

from dataclasses import dataclass

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    sampled: bool


def parse_traceparent(header: str | None) -> TraceParent | None:
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
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))
