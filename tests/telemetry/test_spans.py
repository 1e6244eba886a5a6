"""Spans and OpenTelemetry metrics for one recorded request, through in-memory exporters: names,
kinds, parentage, GenAI and frugal.* attributes, opt-in content, bucket boundaries."""

import time
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from gateway.call import Call
from gateway.config import Settings, Tier
from gateway.keys import Principal
from gateway.providers.base import Endpoint
from gateway.resilience import Attempt
from gateway.routing import Decision
from gateway.telemetry.instruments import SECONDS_BUCKETS, TOKEN_BUCKETS
from gateway.telemetry.service import Telemetry
from gateway.usage import Usage
from tests.telemetry.support import MemorySpans, SpanView, config

PROMPT = "What is the capital of France? Think step by step."


def a_call() -> Call:
    body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}],
            "temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "stop": ["\n\n"]}  # fmt: skip
    call = Call("req-123", Principal("research", "0123456789ab"), Endpoint.chat, body)
    call.started = time.perf_counter() - 0.5
    call.decision = Decision("auto", Tier.small, ["dead", "small-a"], 0.31,
                             "score 0.310 < threshold 0.5")  # fmt: skip
    t = call.started
    call.attempts = [Attempt("dead", 1, "UpstreamError", 20.0, t + 0.01),
                     Attempt("small-a", 1, "ok", 300.0, t + 0.05)]  # fmt: skip
    call.model = "small-a"
    call.usage = Usage(12, 7)
    call.cost, call.baseline_cost = Decimal("0.0025"), Decimal("0.09")
    call.cache = "miss"
    call.budget_remaining_usd = Decimal("99.5")
    call.response = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Paris."},
            }
        ]
    }
    return call


def exported(t: Telemetry, sink: MemorySpans) -> list[SpanView]:
    """What the span writer has sent once it has flushed, then stopped."""
    assert t.spans is not None
    assert t.spans.flush(5)
    t.spans.shutdown(5)
    return sink.spans()


def record(capture: bool = False) -> tuple[Telemetry, list[SpanView], InMemoryMetricReader]:
    sink, reader = MemorySpans(), InMemoryMetricReader()
    settings = Settings(**config("http://127.0.0.1:9/v1",
                                 telemetry={"capture_content": capture}))  # fmt: skip
    t = Telemetry.start(settings, span_sender=sink, metric_reader=reader)
    t.record(a_call())
    return t, exported(t, sink), reader


def test_one_request_span_and_one_span_per_attempt() -> None:
    t, spans, _ = record()
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"chat auto", "chat dead", "chat small-a"}
    req, dead, ok = by_name["chat auto"], by_name["chat dead"], by_name["chat small-a"]
    assert req.server and not dead.server and not ok.server
    assert req.parent_id == 0 and dead.parent_id == ok.parent_id == req.span_id != 0
    assert req.trace_id == dead.trace_id == ok.trace_id != 0
    assert len({req.span_id, dead.span_id, ok.span_id}) == 3
    assert 0.45 < (req.end_ns - req.start_ns) / 1e9 < 2
    assert (ok.end_ns - ok.start_ns) / 1e6 == 300.0
    assert req.start_ns <= dead.start_ns <= ok.start_ns <= req.end_ns
    assert dead.error == "UpstreamError" and ok.error is None and req.error is None
    assert dead.attributes["error.type"] == "UpstreamError"
    assert ok.attributes["gen_ai.usage.output_tokens"] == 7
    assert ok.attributes["gen_ai.provider.name"] == "openai"
    assert req.resource["service.name"] == "frugal-gateway"
    assert t.spans is not None and t.spans.dropped == t.spans.failures == 0


def test_request_span_attributes() -> None:
    _, spans, _ = record()
    a: Any = next(s for s in spans if s.name == "chat auto").attributes
    expected = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "auto", "gen_ai.response.model": "small-a",
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7,
        "gen_ai.request.max_tokens": 64, "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9, "gen_ai.request.stop_sequences": ("\n\n",),
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.cost": 0.0025,
        "frugal.team": "research", "frugal.key_id": "0123456789ab", "frugal.tier": "small",
        "frugal.route": "auto", "frugal.route.score": 0.31,
        "frugal.route.reason": "score 0.310 < threshold 0.5", "frugal.cache": "miss",
        "frugal.cost_usd": "0.0025", "frugal.baseline_cost_usd": "0.09",
        "frugal.savings_usd": "0.0875", "frugal.savings_source": "routing",
        "frugal.budget.remaining_usd": "99.5", "frugal.request_id": "req-123",
    }  # fmt: skip
    assert {k: a.get(k) for k in expected} == expected
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert not any(PROMPT in str(v) or "Paris" in str(v) for v in a.values())


def test_content_only_when_opted_in() -> None:
    _, spans, _ = record(capture=True)
    a: Any = next(s for s in spans if s.name == "chat auto").attributes
    assert PROMPT in a["gen_ai.input.messages"]
    assert "Paris." in a["gen_ai.output.messages"]


def test_otel_metrics_use_the_spec_names_and_buckets() -> None:
    _, _, reader = record()
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics}  # fmt: skip
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    points = [p for p in usage.data.data_points if isinstance(p, HistogramDataPoint)]
    by_type = {p.attributes["gen_ai.token.type"]: p for p in points if p.attributes}
    assert by_type["input"].sum == 12 and by_type["output"].sum == 7
    assert tuple(by_type["input"].explicit_bounds) == TOKEN_BUCKETS
    assert by_type["input"].attributes == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "auto", "gen_ai.response.model": "small-a",
        "gen_ai.token.type": "input", "team": "research", "tier": "small",
    }  # fmt: skip
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    (dp,) = duration.data.data_points
    assert isinstance(dp, HistogramDataPoint)
    assert tuple(dp.explicit_bounds) == SECONDS_BUCKETS
    cost = [(p.attributes, getattr(p, "value", None))
            for p in metrics["frugal.cost.usd"].data.data_points]  # fmt: skip
    assert cost == [({"team": "research", "model": "small-a", "tier": "small"}, 0.0025)]
    errors = [(p.attributes, getattr(p, "value", None))
              for p in metrics["frugal.upstream.errors"].data.data_points]  # fmt: skip
    assert errors == [({"model": "dead", "error.type": "UpstreamError"}, 1)]


def test_trace_sampling_keeps_a_share_of_requests_and_every_metric() -> None:
    sink, reader = MemorySpans(), InMemoryMetricReader()
    telemetry = {"otlp": {"trace_sample_ratio": 0.25}}
    settings = Settings(**config("http://127.0.0.1:9/v1", telemetry=telemetry))
    t = Telemetry.start(settings, span_sender=sink, metric_reader=reader)
    for _ in range(400):
        t.record(a_call())
    traced = sum(1 for s in exported(t, sink) if s.name == "chat auto")
    assert 50 <= traced <= 150  # 25% of 400, give or take chance
    data = reader.get_metrics_data()
    assert data is not None
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name == "gen_ai.client.token.usage" for p in m.data.data_points]  # fmt: skip
    assert sum(int(p.count) for p in points if isinstance(p, HistogramDataPoint)) == 800


def test_traceparent_parsing_follows_the_w3c_rules() -> None:
    from gateway.telemetry.tracecontext import Trace, parse_traceparent

    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent(good) == Trace(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True
    )
    assert parse_traceparent(good[:-2] + "00") == Trace(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False
    )
    # a later version may append fields; version 00 may not
    assert parse_traceparent("01" + good[2:] + "-what-comes-next") is not None
    for bad in (None, "", "garbage", good + "-x", "ff" + good[2:], good.upper(),
                "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
                "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"):  # fmt: skip
        assert parse_traceparent(bad) is None, bad


def test_spans_continue_the_callers_trace_and_follow_its_sampling() -> None:
    from gateway.telemetry.tracecontext import Trace

    sink = MemorySpans()
    telemetry = {"otlp": {"trace_sample_ratio": 0.0}}  # the caller's flag wins over the ratio
    settings = Settings(**config("http://127.0.0.1:9/v1", telemetry=telemetry))
    t = Telemetry.start(settings, span_sender=sink)
    sampled, not_sampled = a_call(), a_call()
    sampled.trace = Trace(0xABC, 0x123, True)
    not_sampled.trace = Trace(0xDEF, 0x456, False)
    for call in (sampled, not_sampled, a_call()):
        t.record(call)
    got = exported(t, sink)
    assert {s.trace_id for s in got} == {0xABC}
    req = next(s for s in got if s.name == "chat auto")
    assert req.parent_id == 0x123
    assert all(s.parent_id == req.span_id for s in got if s is not req)


def test_spans_use_the_ids_sent_upstream() -> None:
    """A request without a caller's trace keeps the trace id chosen when it arrived, and each
    attempt's span has the id its upstream was told in `traceparent`."""
    from gateway.telemetry.tracecontext import Trace, start_trace, traceparent

    sink = MemorySpans()
    t = Telemetry.start(Settings(**config("http://127.0.0.1:9/v1")), span_sender=sink)
    assert t.trace_for(None) is not None
    call = a_call()
    call.trace = start_trace(None, 1.0)
    call.attempts[0].span_id, call.attempts[1].span_id = 0x111, 0x222
    t.record(call)
    got = {s.name: s for s in exported(t, sink)}
    assert {s.trace_id for s in got.values()} == {call.trace.trace_id}
    assert got["chat auto"].parent_id == 0
    assert got["chat dead"].span_id == 0x111 and got["chat small-a"].span_id == 0x222
    assert traceparent(call.trace, 0x222) == f"00-{call.trace.trace_id:032x}-{0x222:016x}-01"
    assert traceparent(Trace(1, None, False), 2).endswith("-00")
    off = Telemetry.start(Settings(**config("http://127.0.0.1:9/v1", telemetry={"enabled": False})))
    assert off.trace_for("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") is None


def test_the_log_line_names_the_trace_of_a_sampled_request(caplog: Any) -> None:
    from gateway.record import record as record_call
    from gateway.telemetry.tracecontext import Trace

    caplog.set_level("INFO", logger="frugal.request")
    traced, unsampled, untraced = a_call(), a_call(), a_call()
    traced.trace, unsampled.trace = Trace(0xABC, None, True), Trace(0xDEF, None, False)
    for call in (traced, unsampled, untraced):
        record_call(call)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")]
    assert [line.rsplit(" ", 1)[1] for line in lines] == [
        f"trace_id={0xABC:032x}",
        "trace_id=-",
        "trace_id=-",
    ]
