"""Every metric Frugal records, defined once, and what one request adds to each.

Names follow OpenTelemetry's GenAI conventions where they exist (`gen_ai.client.*`, with the
spec's bucket boundaries) and use the `frugal.` prefix otherwise. The Prometheus name is what
the OpenTelemetry-to-Prometheus translation makes of the OTel name (dots to underscores, unit
suffix, `_total` for counters), so dashboards work against the gateway's own /metrics and
against a collector's Prometheus exporter alike. Attribute names are already label-safe."""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway import errors
from gateway.telemetry.facts import CACHE_RESULTS, ERRORS, REASONS, Catalog, Facts, refusal_reason

TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
SECONDS_BUCKETS = tuple(round(0.01 * 2**i, 2) for i in range(14))  # 0.01, 0.02, ... 81.92

GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model",
         "gen_ai_response_model")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Spec:
    otel: str  # the OpenTelemetry instrument name
    prom: str  # the Prometheus name (without _total / _bucket suffixes)
    kind: Literal["counter", "histogram"]
    unit: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


TOKENS = Spec("gen_ai.client.token.usage", "gen_ai_client_token_usage", "histogram", "{token}",
              "Tokens used per request, by type (input, output)",
              (*GENAI, "gen_ai_token_type", "team", "tier"), TOKEN_BUCKETS)  # fmt: skip
DURATION = Spec("gen_ai.client.operation.duration", "gen_ai_client_operation_duration_seconds",
                "histogram", "s", "Request duration as seen by the gateway",
                (*GENAI, "error_type", "tier"), SECONDS_BUCKETS)  # fmt: skip
TTFC = Spec("gen_ai.client.operation.time_to_first_chunk",
            "gen_ai_client_operation_time_to_first_chunk_seconds", "histogram", "s",
            "Time from request to the first streamed chunk", (*GENAI, "tier"),
            SECONDS_BUCKETS)  # fmt: skip
COST = Spec("frugal.cost.usd", "frugal_cost_usd", "counter", "{USD}",
            "Spend in USD", ("team", "model", "tier"))  # fmt: skip
COST_CLASSES = Spec("frugal.cost.by_class.usd", "frugal_cost_by_class_usd", "counter", "{USD}",
                    "Spend in USD by token class (input_uncached, input_cached, "
                    "input_cache_write, input_cache_write_1h, output, output_reasoning); "
                    "sums to frugal_cost_usd",
                    ("team", "model", "tier", "token_class"))  # fmt: skip
TOKEN_CLASSES = Spec("frugal.tokens", "frugal_tokens", "counter", "{token}",
                     "Billed tokens by class (as frugal_cost_by_class_usd)",
                     ("team", "model", "tier", "token_class"))  # fmt: skip
TOKEN_CLASS_NAMES = ("input_uncached", "input_cached", "input_cache_write",
                     "input_cache_write_1h", "output", "output_reasoning")  # fmt: skip
SAVINGS = Spec("frugal.savings.usd", "frugal_savings_usd", "counter", "{USD}",
               "Savings in USD against the route's large model, by source (routing, cache)",
               ("team", "model", "tier", "source"))  # fmt: skip
REQUESTS = Spec("frugal.requests", "frugal_requests", "counter", "{request}",
                "Finished requests by status (ok, refused, error, disconnected) and outcome "
                "(ok, client_disconnected or an error class)",
                ("team", "model", "tier", "status", "outcome"))  # fmt: skip
CACHE = Spec(
    "frugal.cache.requests",
    "frugal_cache_requests",
    "counter",
    "{request}",
    "Cache results (off, miss, hit, semantic-hit, bypass)",
    ("team", "result"),
)
ROUTES = Spec(
    "frugal.route.decisions",
    "frugal_route_decisions",
    "counter",
    "{decision}",
    "Route decisions by route, tier and reason",
    ("route", "tier", "reason"),
)
REFUSALS = Spec("frugal.refusals", "frugal_refusals", "counter", "{request}",
                "Requests the gateway refused (budget, rate limit, policy), by reason",
                ("team", "reason"))  # fmt: skip
UPSTREAM_ERRORS = Spec("frugal.upstream.errors", "frugal_upstream_errors", "counter", "{error}",
                       "Failed upstream attempts by model and error class",
                       ("model", "error_type"))  # fmt: skip

ALL = (TOKENS, DURATION, TTFC, COST, COST_CLASSES, TOKEN_CLASSES, SAVINGS, REQUESTS, CACHE,
       ROUTES, REFUSALS, UPSTREAM_ERRORS)  # fmt: skip


class Sink(Protocol):
    def add(self, spec: Spec, value: float, labels: Sequence[str]) -> None: ...

    def observe(self, spec: Spec, value: float, labels: Sequence[str]) -> None: ...


def emit(f: Facts, sink: Sink) -> None:
    """What one finished request adds to every metric."""
    genai = (f.operation, f.provider, f.request_model, f.response_model)
    if f.input_tokens is not None and f.output_tokens is not None:
        sink.observe(TOKENS, f.input_tokens, (*genai, "input", f.team, f.tier))
        sink.observe(TOKENS, f.output_tokens, (*genai, "output", f.team, f.tier))
    sink.observe(DURATION, f.duration_s, (*genai, f.error_type, f.tier))
    if f.ttfc_s is not None:
        sink.observe(TTFC, f.ttfc_s, (*genai, f.tier))
    money = (f.team, f.response_model, f.tier)
    if f.cost_usd:
        sink.add(COST, f.cost_usd, money)
        for cls, usd in f.cost_classes.items():
            if usd:
                sink.add(COST_CLASSES, usd, (*money, cls))
    for cls, n in f.token_classes.items():
        if n:
            sink.add(TOKEN_CLASSES, n, (*money, cls))
    if f.savings_usd is not None and f.savings_usd > 0:
        sink.add(SAVINGS, f.savings_usd, (*money, f.savings_source))
    sink.add(REQUESTS, 1, (*money, f.status, f.outcome))
    sink.add(CACHE, 1, (f.team, f.cache))
    if f.route != "none":
        sink.add(ROUTES, 1, (f.route, f.route_tier, f.reason))
    if f.refusal is not None:
        sink.add(REFUSALS, 1, (f.team, f.refusal))
    for model, error in f.upstream_errors:
        sink.add(UPSTREAM_ERRORS, 1, (model, error))


def zero_series(catalog: Catalog, teams: Iterable[str]) -> Iterator[tuple[Spec, tuple[str, ...]]]:
    """The counter series known at start-up, to be created at 0: a series that first appears
    with its first increment loses that increment to Prometheus' increase() and rate()."""
    teams = sorted(set(teams))
    upstream = sorted(n for n, c in ERRORS.items() if issubclass(c, errors.UpstreamError))
    refusals = sorted(n for n in ERRORS if refusal_reason(n) is not None)
    for team in teams:
        for model, tier in catalog.chat_tiers.items():
            yield COST, (team, model, tier)
            for cls in TOKEN_CLASS_NAMES:
                yield COST_CLASSES, (team, model, tier, cls)
                yield TOKEN_CLASSES, (team, model, tier, cls)
            yield REQUESTS, (team, model, tier, "ok", "ok")
            for source in ("routing", "cache"):
                yield SAVINGS, (team, model, tier, source)
        for result in CACHE_RESULTS:
            yield CACHE, (team, result)
        for reason in refusals:
            yield REFUSALS, (team, reason)
    for route, tiers in catalog.route_tiers.items():
        for tier in tiers:
            for reason in REASONS:
                yield ROUTES, (route, tier, reason)
    for tier in sorted(set(catalog.chat_tiers.values())):
        yield ROUTES, ("pinned", tier, "pinned")
    for model in catalog.chat_tiers:
        for error in upstream:
            yield UPSTREAM_ERRORS, (model, error)
