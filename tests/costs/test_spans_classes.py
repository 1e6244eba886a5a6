"""The request and attempt spans carry the token classes and the cost of each."""

import time
from decimal import Decimal

from gateway.call import Call
from gateway.config import Settings, Tier
from gateway.keys import Principal
from gateway.providers.base import Endpoint
from gateway.resilience import Attempt
from gateway.routing import Decision
from gateway.telemetry.service import Telemetry
from gateway.usage import Usage
from tests.telemetry.support import MemorySpans, config


def test_spans_carry_the_token_classes() -> None:
    body = {"model": "small-a", "messages": [{"role": "user", "content": "hi"}]}
    call = Call("req-classes", Principal("research", None), Endpoint.chat, body)
    call.decision = Decision(None, Tier.small, ["small-a"], None, "pinned")
    call.attempts = [Attempt("small-a", 1, "ok", 10.0, time.perf_counter())]
    call.model = "small-a"
    call.usage = Usage(60_000, 800, cached_tokens=55_000, cache_write_tokens=2_000,
                       cache_write_1h_tokens=1_000, reasoning_tokens=300)  # fmt: skip
    call.cost = Decimal("0.04575")
    call.cost_classes = {"input_cached": Decimal("0.0165"), "output": Decimal("0.0075")}
    sink = MemorySpans()
    t = Telemetry.start(Settings(**config("http://127.0.0.1:9/v1")), span_sender=sink)
    t.record(call)
    assert t.spans is not None and t.spans.flush(5)
    t.spans.shutdown(5)
    spans = sink.spans()
    server = next(s for s in spans if s.server)
    a = server.attributes
    assert a["gen_ai.usage.input_tokens"] == 60_000
    assert a["gen_ai.usage.cache_read.input_tokens"] == 55_000
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 3_000
    assert a["frugal.usage.cache_write_1h_tokens"] == 1_000
    assert a["frugal.usage.reasoning_tokens"] == 300
    assert a["frugal.cost.input_cached_usd"] == "0.0165"
    attempt = next(s for s in spans if not s.server)
    assert attempt.attributes["gen_ai.usage.cache_read.input_tokens"] == 55_000
