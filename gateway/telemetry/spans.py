"""One span per request (SERVER) and one per upstream attempt (CLIENT), made when the request
is recorded, with their real start and end times, for the span writer (spanwriter.py). GenAI
attributes follow the OpenTelemetry conventions; `frugal.*` attributes carry what the
conventions do not name. Prompt and completion text only with `telemetry.capture_content: true`.
"""

import time
from decimal import Decimal
from typing import Any

import orjson

from gateway.call import Call
from gateway.pricing import usd
from gateway.telemetry.facts import Catalog, Facts
from gateway.telemetry.spanwriter import SpanData
from gateway.telemetry.tracecontext import Trace, new_span_id
from gateway.usage import Usage

REQUEST_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
}


def _request_params(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, key in REQUEST_PARAMS.items():
        v = body.get(field)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[key] = v
    stop = body.get("stop")
    if isinstance(stop, str):
        out["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        out["gen_ai.request.stop_sequences"] = stop
    return out


def usage_attributes(u: Usage) -> dict[str, Any]:
    """Token counts by class: the GenAI names where they exist, `frugal.usage.*` otherwise."""
    a: dict[str, Any] = {
        "gen_ai.usage.input_tokens": u.prompt_tokens,
        "gen_ai.usage.output_tokens": u.completion_tokens,
    }
    if u.cached_tokens:
        a["gen_ai.usage.cache_read.input_tokens"] = u.cached_tokens
    if u.cache_writes:
        a["gen_ai.usage.cache_creation.input_tokens"] = u.cache_writes
        a["frugal.usage.cache_write_1h_tokens"] = u.cache_write_1h_tokens
    if u.reasoning_tokens:
        a["frugal.usage.reasoning_tokens"] = u.reasoning_tokens
    if u.service_tier:
        a["frugal.usage.service_tier"] = u.service_tier
    return a


def finish_reasons(call: Call) -> list[str]:
    choices = (call.response or {}).get("choices") or ()
    return [str(c["finish_reason"]) for c in choices
            if isinstance(c, dict) and c.get("finish_reason")]  # fmt: skip


def _content(call: Call) -> dict[str, str]:
    body = call.body
    prompt = body.get("messages") if "messages" in body else body.get("prompt", body.get("input"))
    out = {"gen_ai.input.messages": orjson.dumps(prompt).decode()}
    if call.response is not None:
        choices = call.response.get("choices") or []
        out["gen_ai.output.messages"] = orjson.dumps(choices).decode()
    return out


def request_attributes(call: Call, f: Facts, capture: bool) -> dict[str, Any]:
    d = call.decision
    a: dict[str, Any] = {
        "gen_ai.operation.name": f.operation,
        "gen_ai.provider.name": f.provider,
        "gen_ai.request.model": f.request_model,
        "frugal.request_id": call.request_id,
        "frugal.team": f.team,
        "frugal.tier": f.tier,
        "frugal.route": f.route,
        "frugal.cache": call.cache,
        "frugal.outcome": call.outcome,
        "frugal.attempts": len(call.attempts),
        **_request_params(call.body),
    }
    if call.principal.key_id:
        a["frugal.key_id"] = call.principal.key_id
    if call.model:
        a["gen_ai.response.model"] = call.model
    if d is not None:
        a["frugal.route.reason"] = d.reason
        if d.score is not None:
            a["frugal.route.score"] = d.score
    if call.usage is not None:
        a.update(usage_attributes(call.usage))
        a["frugal.usage.estimated"] = call.usage.estimated
    for cls, usd_ in call.cost_classes.items():
        if usd_ and call.cost:
            a[f"frugal.cost.{cls}_usd"] = usd(usd_.quantize(Decimal("0.00000001")))
    if call.cost is not None:
        a["gen_ai.usage.cost"] = float(call.cost)
        a["frugal.cost_usd"] = usd(call.cost)
    if call.baseline_cost is not None:
        a["frugal.baseline_cost_usd"] = usd(call.baseline_cost)
    if call.savings is not None:
        a["frugal.savings_usd"] = usd(call.savings)
        a["frugal.savings_source"] = f.savings_source
    if call.budget_remaining_usd is not None:
        a["frugal.budget.remaining_usd"] = usd(call.budget_remaining_usd)
    if reasons := finish_reasons(call):
        a["gen_ai.response.finish_reasons"] = reasons
    if f.error_type:
        a["error.type"] = f.error_type
    if capture:
        a.update(_content(call))
    return a


def emit_spans(
    call: Call, trace: Trace, f: Facts, catalog: Catalog, capture: bool
) -> list[SpanData]:
    """The request's span and one per upstream attempt, in `trace` (chosen when the request
    arrived; the caller's when it sent a `traceparent`), attempts with the span ids their
    upstreams were sent."""
    end_ns = time.time_ns()
    start_ns = end_ns - int(f.duration_s * 1e9)
    trace_id = trace.trace_id
    request_id = new_span_id()
    spans = [SpanData(f"{f.operation} {f.request_model}", True, trace_id, request_id,
                      trace.parent_id or 0, start_ns, end_ns,
                      request_attributes(call, f, capture), f.error_type or None)]  # fmt: skip
    last = len(call.attempts) - 1
    for i, att in enumerate(call.attempts):
        offset_s = max(0.0, att.started - call.started) if att.started else 0.0
        began = start_ns + int(offset_s * 1e9)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": f.operation,
            "gen_ai.provider.name": catalog.providers.get(att.model, "none"),
            "gen_ai.request.model": att.model,
            "frugal.attempt": att.number,
            "frugal.attempt.outcome": att.outcome,
        }
        if att.outcome == "ok" and i == last:
            attrs["gen_ai.response.model"] = att.model
            if call.usage is not None:
                attrs.update(usage_attributes(call.usage))
        error = None
        if att.outcome != "ok":
            attrs["error.type"] = error = att.outcome
        spans.append(SpanData(f"{f.operation} {att.model}", False, trace_id,
                              att.span_id or new_span_id(), request_id, began,
                              began + int(att.ms * 1e6), attrs, error))  # fmt: skip
    return spans
