"""What one finished request contributes to telemetry, worked out once from its `Call`.

Every label value here comes from a bounded set: configured model and route names, team names
from the policies and keys, tiers, fixed categories and error class names. Client-supplied
strings (an unknown model name, a prompt, a request id, a key) never become a label."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway import errors
from gateway.call import Call
from gateway.config import ModelConfig, Settings
from gateway.providers.base import Endpoint
from gateway.routing import Decision

OPERATION = {
    Endpoint.chat: "chat",
    Endpoint.completions: "text_completion",
    Endpoint.embeddings: "embeddings",
}
CACHE_HITS = ("hit", "semantic-hit")
CACHE_RESULTS = ("off", "miss", "hit", "semantic-hit", "bypass")
REASONS = (
    "budget_downgrade",
    "budget_small_tier",
    "budget_threshold_raised",
    "tier_unavailable",
    "score_above_threshold",
    "score_below_threshold",
)  # for routes; "pinned" otherwise


def _error_classes() -> dict[str, type[errors.FrugalError]]:
    out: dict[str, type[errors.FrugalError]] = {}

    def walk(cls: type[errors.FrugalError]) -> Iterator[type[errors.FrugalError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    for cls in walk(errors.FrugalError):
        out[cls.__name__] = cls
    return out


ERRORS = _error_classes()


def provider_name(m: ModelConfig) -> str:
    """`gen_ai.provider.name`: llama.cpp for a local model, the LiteLLM prefix, else openai."""
    if m.local is not None:
        return "llama.cpp"
    if m.provider == "litellm" and "/" in m.model:
        return m.model.split("/", 1)[0]
    return m.provider


@dataclass(frozen=True, slots=True)
class Catalog:
    """Names known at start-up: the only values request/response model labels may take."""

    providers: dict[str, str]  # gateway model name -> gen_ai.provider.name
    routes: frozenset[str]
    chat_tiers: dict[str, str]  # chat model -> its tier
    route_tiers: dict[str, tuple[str, ...]]
    tiers: dict[str, str]  # every model -> its tier

    @classmethod
    def of(cls, settings: Settings) -> "Catalog":
        return cls(
            {n: provider_name(m) for n, m in settings.models.items()},
            frozenset(settings.routes),
            {n: m.tier.value for n, m in settings.models.items() if m.kind == "chat"},
            {n: tuple(t.value for t in r.tiers) for n, r in settings.routes.items()},
            {n: m.tier.value for n, m in settings.models.items()},
        )

    def request_model(self, name: object) -> str:
        if isinstance(name, str) and (name in self.providers or name in self.routes):
            return name
        return "other"

    def response_model(self, name: str | None) -> str:
        return name if name is not None and name in self.providers else "none"


def reason_category(d: Decision) -> str:
    """The route reason as a small fixed set (the full reason goes on the span)."""
    return "pinned" if d.route is None else d.category


def outcome_label(outcome: str) -> str:
    if outcome in ("ok", "client_disconnected"):
        return outcome
    if outcome.startswith("upstream_error_mid_stream"):
        return "upstream_error_mid_stream"
    return outcome if outcome in ERRORS else "other"


def refusal_reason(outcome: str) -> str | None:
    """A refusal is the gateway saying no (4xx, not an upstream's error): its class name."""
    cls = ERRORS.get(outcome)
    if cls is None or issubclass(cls, errors.UpstreamError) or not 400 <= cls.status < 500:
        return None
    return outcome


@dataclass(slots=True)
class Facts:
    operation: str
    provider: str
    request_model: str
    response_model: str
    team: str
    tier: str  # the tier of the model that answered (the decided one when none did)
    route_tier: str  # the tier the router decided
    route: str
    reason: str
    cache: str
    outcome: str
    refusal: str | None
    duration_s: float
    ttfc_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    # By token class (Usage.classes() names): billed tokens, and what they cost.
    token_classes: dict[str, int] = field(default_factory=dict)
    cost_classes: dict[str, float] = field(default_factory=dict)
    savings_usd: float | None = None
    savings_source: str = "routing"
    upstream_errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error_type(self) -> str:
        return "" if self.outcome in ("ok", "client_disconnected") else self.outcome

    @property
    def status(self) -> str:
        """ok | disconnected | refused (the gateway said no) | error (anything else failed)."""
        if self.outcome in ("ok", "client_disconnected"):
            return "ok" if self.outcome == "ok" else "disconnected"
        return "refused" if self.refusal is not None else "error"


def facts_of(call: Call, catalog: Catalog) -> Facts:
    d = call.decision
    model = catalog.response_model(call.model)
    if model == "none" and d is not None and d.candidates:
        provider_model = d.candidates[0]
    else:
        provider_model = model
    f = Facts(
        operation=OPERATION.get(call.endpoint, "chat"),
        provider=catalog.providers.get(provider_model, "none"),
        request_model=catalog.request_model(call.body.get("model")),
        response_model=model,
        team=call.principal.team,
        tier=catalog.tiers.get(model) or (d.tier.value if d else "none"),
        route_tier=d.tier.value if d else "none",
        route=(d.route or "pinned") if d else "none",
        reason=reason_category(d) if d else "none",
        cache=call.cache if call.cache in CACHE_RESULTS else "other",
        outcome=outcome_label(call.outcome),
        refusal=refusal_reason(call.outcome),
        duration_s=call.elapsed_ms() / 1000,
        ttfc_s=call.first_chunk_ms / 1000 if call.first_chunk_ms is not None else None,
        savings_source="cache" if call.cache in CACHE_HITS else "routing",
    )  # fmt: skip
    if call.usage is not None:
        f.input_tokens, f.output_tokens = call.usage.prompt_tokens, call.usage.completion_tokens
    if call.cost is not None:
        f.cost_usd = float(call.cost)
    if call.cost and call.usage is not None:  # billed (a cache hit costs nothing)
        f.token_classes = call.usage.classes()
        f.cost_classes = {k: float(v) for k, v in call.cost_classes.items()}
    if call.savings is not None:
        f.savings_usd = float(call.savings)
    f.upstream_errors = [(catalog.response_model(a.model), a.outcome)
                         for a in call.attempts if a.outcome != "ok"]  # fmt: skip
    return f
