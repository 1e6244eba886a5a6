"""The one place a finished request is recorded: a log line, then telemetry (metrics and
spans, gateway/telemetry). Recording never raises into the request."""

import logging

from gateway.call import Call
from gateway.pricing import usd
from gateway.telemetry import hook

log = logging.getLogger("frugal.request")


def record(call: Call) -> None:
    try:
        _log(call)
    except Exception:  # recording must never change a request's outcome
        log.exception("failed to record request %s", call.request_id)
    recorder = hook.current()
    if recorder is not None:
        recorder.record(call)  # never raises


def _log(call: Call) -> None:
    d = call.decision
    u = call.usage
    log.info(
        "request request_id=%s team=%s key_id=%s endpoint=%s route=%s router=%s model=%s "
        "tier=%s outcome=%s cache=%s prompt_tokens=%s completion_tokens=%s estimated=%s "
        "cached_tokens=%s cache_write_tokens=%s cache_write_1h_tokens=%s reasoning_tokens=%s "
        "service_tier=%s cost_usd=%s savings_usd=%s attempts=%s ms=%.1f trace_id=%s",
        call.request_id, call.principal.team, call.principal.key_id or "-",
        (call.api or call.endpoint).value,  # the client's API (a bridged one: messages, ...)
        (d.route or "pinned") if d else "-",
        d.extra.get("router_version", "-") if d else "-",  # the scorer's version (routed only)
        call.model or "-", d.tier.value if d else "-",
        call.outcome, call.cache, u.prompt_tokens if u else "-",
        u.completion_tokens if u else "-", u.estimated if u else "-",
        # the token classes the cost was worked out from (gateway/usage.py)
        u.cached_tokens if u else "-", u.cache_write_tokens if u else "-",
        u.cache_write_1h_tokens if u else "-", u.reasoning_tokens if u else "-",
        (u.service_tier or "-") if u else "-",
        usd(call.cost) if call.cost is not None else "-",
        usd(call.savings) if call.savings is not None else "-",
        # every upstream attempt with its outcome, e.g. small-a#1:UpstreamError,large-a#1:ok
        ",".join(f"{a.model}#{a.number}:{a.outcome}" for a in call.attempts) or "-",
        call.elapsed_ms(),
        # the trace of this request's spans when it was sampled (telemetry/tracecontext.py)
        f"{call.trace.trace_id:032x}" if call.trace is not None and call.trace.sampled else "-",
    )  # fmt: skip
