"""One request's state as it moves through the pipeline, and the headers it produces."""

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway.keys import Principal
from gateway.pricing import usd
from gateway.providers.base import Endpoint
from gateway.resilience import Attempt
from gateway.routing import Decision
from gateway.telemetry.tracecontext import Trace
from gateway.usage import Usage


@dataclass(slots=True)
class Call:
    request_id: str
    principal: Principal
    endpoint: Endpoint
    body: dict[str, Any]
    # The API the client spoke when a translator (gateway/apis/) bridged it onto `endpoint`.
    api: Endpoint | None = None
    started: float = field(default_factory=time.perf_counter)
    decision: Decision | None = None
    model: str | None = None
    usage: Usage | None = None
    cost: Decimal | None = None
    # `cost` by token class (gateway.pricing.breakdown), for metrics and spans.
    cost_classes: dict[str, Decimal] = field(default_factory=dict)
    outcome: str = "ok"
    attempts: list[Attempt] = field(default_factory=list)
    # What the same usage would have cost on the route's large model (savings = this - cost).
    baseline_cost: Decimal | None = None
    cache: str = "off"  # off | miss | hit | semantic-hit | bypass
    # What the request's Cache-Control / x-frugal-cache headers allow (gateway/cache/controls.py).
    cache_read: bool = True
    cache_write: bool = True
    budget_remaining_usd: Decimal | None = None
    # The answer, OpenAI-shaped (a stream's: a summary of its choices), for telemetry's
    # finish reasons and opt-in content; and when a stream's first chunk went out.
    response: dict[str, Any] | None = None
    first_chunk_ms: float | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    trace: Trace | None = None  # set when tracing is on (telemetry/tracecontext.py)
    # The client's own body on a translated API (`api`): passed through to a model whose
    # upstream speaks that API natively (gateway/apis/native.py).
    native: dict[str, Any] | None = None
    # Why the bridge could not translate it, when only such a model can take it.
    native_only: str | None = None
    # A reference answer the caller sent (header x-frugal-expected), for the learning judge.
    expected: str | None = None

    @property
    def savings(self) -> Decimal | None:
        if self.baseline_cost is None or self.cost is None:
            return None
        return self.baseline_cost - self.cost

    def headers(self, *, streaming: bool = False) -> dict[str, str]:
        d = self.decision
        h = {
            "x-request-id": self.request_id,
            "x-frugal-model": self.model or (d.candidates[0] if d and d.candidates else "-"),
            "x-frugal-tier": d.tier.value if d else "-",
            "x-frugal-route": (d.route or "pinned") if d else "-",
        }
        if streaming:
            h["x-frugal-cost-usd"] = "pending"  # the final chunk's `x_frugal.cost_usd` has it
        else:
            h["x-frugal-cost-usd"] = usd(self.cost) if self.cost is not None else "0"
        if d and d.score is not None:
            h["x-frugal-route-score"] = f"{d.score:.4f}"
            h["x-frugal-route-reason"] = d.reason
            if "router_version" in d.extra:
                h["x-frugal-router-version"] = d.extra["router_version"]
        if self.usage is not None and self.usage.estimated:
            h["x-frugal-usage-estimated"] = "true"
        if self.cache != "off":
            h["x-frugal-cache"] = self.cache
        if self.budget_remaining_usd is not None:
            h["x-frugal-budget-remaining-usd"] = usd(self.budget_remaining_usd)
        h.update(self.extra_headers)
        return h

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
