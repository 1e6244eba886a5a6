"""Typed configuration: YAML file + `FRUGAL_*` environment overrides, validated at start-up.

Unknown keys and bad values are errors that name the file, the field and the fix.
Environment overrides use `__` for nesting, e.g. `FRUGAL_SERVER__PORT=9000`,
`FRUGAL_REDIS_URL=redis://...`.
"""

import os
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.cache.settings import CacheSettings
from gateway.learning.settings import LearningConfig
from gateway.store.settings import StoreSettings
from gateway.telemetry.settings import TelemetrySettings

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "frugal.yaml"


class Tier(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


# A request's upstream calls end this long before its budget hold expires (resilience.py).
HOLD_MARGIN_S = 60.0

TIER_ORDER = {Tier.small: 0, Tier.medium: 1, Tier.large: 2}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_RATE = Field(default=None, ge=0)


class ClassRates(Strict):
    """USD per million tokens of the token classes a provider may bill apart (gateway/usage.py).
    A class left out is billed as its parent: cached input and cache writes as input (the 1-hour
    write as the 5-minute one), reasoning and audio output as output, audio input as input."""

    # USD per million cached input tokens (default: the input rate).
    cached_input_per_mtok: Decimal | None = _RATE
    cache_write_per_mtok: Decimal | None = _RATE  # Anthropic: 1.25x input (5-minute TTL)
    cache_write_1h_per_mtok: Decimal | None = _RATE  # Anthropic: 2x input (1-hour TTL)
    # USD per million reasoning tokens (default: the output rate).
    reasoning_per_mtok: Decimal | None = _RATE
    # USD per million audio input tokens (default: the input rate).
    audio_input_per_mtok: Decimal | None = _RATE
    # USD per million audio output tokens (default: the output rate).
    audio_output_per_mtok: Decimal | None = _RATE


class LongContext(ClassRates):
    """Once a request's prompt exceeds `above_tokens`, the whole request bills at these rates
    (a rate left out keeps the base one). Gemini and Claude above 200k, gpt-5.x above 272k."""

    # Prompt size (tokens) past which the whole request bills at these rates.
    above_tokens: int = Field(ge=1)
    # USD per million input tokens above the threshold (default: the base rate).
    input_per_mtok: Decimal | None = _RATE
    # USD per million output tokens above the threshold (default: base rate).
    output_per_mtok: Decimal | None = _RATE


class Price(ClassRates):
    """A model's prices, all Decimal. `input_per_mtok` and `output_per_mtok` are required: a
    free model says `{input_per_mtok: 0, output_per_mtok: 0}`. Where a price came from
    (`source`): "config", or the litellm map entry it was read from."""

    # USD per million input tokens (required; 0 for a free model).
    input_per_mtok: Decimal = Field(ge=0)
    # USD per million output tokens (required; 0 for a free model).
    output_per_mtok: Decimal = Field(ge=0)
    # Rates that apply once a prompt exceeds a size (Gemini, Claude, gpt-5.x).
    long_context: tuple[LongContext, ...] = ()
    # Multipliers by the `service_tier` the response reports (e.g. flex: 0.5, priority: 1.75).
    service_tiers: dict[str, Decimal] = Field(default_factory=dict)
    batch_discount: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # 0.5: Batch API at half
    _source: str = PrivateAttr(default="config")

    @property
    def source(self) -> str:
        return self._source

    @property
    def free(self) -> bool:
        return self.input_per_mtok == 0 and self.output_per_mtok == 0

    @field_validator("long_context")
    @classmethod
    def _ascending(cls, v: tuple[LongContext, ...]) -> tuple[LongContext, ...]:
        return tuple(sorted(v, key=lambda t: t.above_tokens))

    @field_validator("service_tiers")
    @classmethod
    def _positive(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(m < 0 for m in v.values()):
            raise ValueError("service tier multipliers must be >= 0")
        return v


def _price_from_map(data: Any) -> Any:
    """A model without `price:` takes its prices from litellm's map (by `price_from:` or its
    `model` id); neither is a configuration error naming the model, never a silent $0."""
    if not isinstance(data, dict) or data.get("price") is not None:
        return data
    from gateway import price_map

    wanted = data.get("price_from") or data.get("model")
    if not isinstance(wanted, str):
        return data  # `model` missing: reported by its own validator
    key = price_map.find(wanted)
    if key is None:
        raise ValueError(
            f"model {wanted!r} has no `price:` and {price_map.version()}'s price map has no "
            f"per-token entry for it; add `price: {{input_per_mtok: ..., output_per_mtok: ...}}` "
            f"(a free model: both 0), or `price_from: <a key of the map>`"
        )
    price = Price(**price_map.rates(key))
    price._source = f"{price_map.version()} map: {key}"
    return {**data, "price": price}


class Timeouts(Strict):
    # Longest wait to connect to the upstream (and for a free connection slot).
    connect_s: float = Field(default=5.0, gt=0)
    # Longest wait for the next byte of the answer.
    read_s: float = Field(default=120.0, gt=0)
    # One attempt, connect to last byte (streams included); must stay below the budget hold
    # (budget.reservation_ttl_s - 60 s, checked at start-up).
    total_s: float = Field(default=600.0, gt=0)


class UpstreamLimits(Strict):
    """What one upstream response may hold (gateway/providers/http1.py enforces them)."""

    max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)  # a body, streams too
    # Largest response head (interim 1xx heads and trailers count).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    # Most header lines in a response head.
    max_headers: int = Field(default=100, ge=8)
    max_sse_line_bytes: int = Field(default=1024 * 1024, ge=1024)  # one line of a stream
    # Requests in flight to the model, per worker (each holds a connection; providers/limit.py).
    max_connections: int = Field(default=100, ge=1)


class LocalServer(Strict):
    """How `frugal local` / `frugal serve` start a llama.cpp server for this model."""

    gguf: str  # a path, or `pypi:<package>/<file>` for a GGUF shipped inside a wheel
    # Port llama-server listens on (base_url should point at it).
    port: int = Field(ge=1, le=65535)
    # Address llama-server listens on.
    host: str = "127.0.0.1"
    # Context window (tokens) llama-server allocates; also the model's input limit when
    # max_input_tokens is unset.
    ctx_size: int = Field(default=2048, ge=128)
    # CPU threads llama-server uses.
    threads: int = Field(default=2, ge=1)
    # llama-server slots: requests it serves at once.
    parallel: int = Field(default=2, ge=1)
    # true: serve /v1/embeddings (mean pooling).
    embeddings: bool = False
    # More command-line arguments for llama-server.
    extra_args: list[str] = Field(default_factory=list)


class ModelConfig(Strict):
    # openai: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama); litellm: everything
    # else (model: "anthropic/claude-...", "bedrock/...").
    provider: Literal["openai", "litellm"] = "openai"
    model: str  # the upstream's model id
    # The upstream's base URL, e.g. https://api.openai.com/v1 (required for openai).
    base_url: str | None = None
    # Name of the environment variable holding the upstream key.
    api_key_env: str | None = None
    # chat or embedding.
    kind: Literal["chat", "embedding"] = "chat"
    # The tier a route picks this model for: small, medium or large.
    tier: Tier = Tier.small
    # Without `price:`, prices come from litellm's map, by `price_from:` or else `model`.
    price: Price
    # The key of litellm's price map to take prices from when `price:` is left out.
    price_from: str | None = None
    timeouts: Timeouts = Timeouts()
    # Output cap sent upstream when the client sets none (also the budget hold's output size); size
    # it to the model.
    max_output_tokens: int = Field(default=4096, ge=1)
    local: LocalServer | None = None
    limits: UpstreamLimits = UpstreamLimits()
    # TLS to the upstream (provider openai): PEM files. ca_bundle replaces the system's CAs;
    # client_cert (+ client_key unless in the same file) is presented for mTLS.
    ca_bundle: str | None = None
    # PEM client certificate presented for mTLS (provider openai).
    client_cert: str | None = None
    # Its private key (default: inside client_cert).
    client_key: str | None = None
    # What the model can take (gateway/capabilities.py). Left out: from litellm's map entry
    # (by `price_from`, else `model`), else `local.ctx_size` for the window, else unknown (a
    # route then assumes the model can).
    max_input_tokens: int | None = Field(default=None, ge=1)
    # Does it take images? null: from litellm's map, else unknown (assumed able).
    vision: bool | None = None
    # Does it take tools (tool calling)? null: from litellm's map, else unknown.
    tools: bool | None = None
    # The client APIs the upstream speaks natively: `chat` (chat completions), `responses`
    # (OpenAI Responses: /v1/responses is passed through), `messages` (Anthropic Messages:
    # /v1/messages passed through, x-api-key auth). Without `chat`, chat requests skip it.
    apis: tuple[Literal["chat", "responses", "messages"], ...] = Field(
        default=("chat",), min_length=1
    )

    _map_price = model_validator(mode="before")(_price_from_map)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if v is not None and any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("must not contain spaces or control characters (CR, LF, ...)")
        return v.rstrip("/") if v else v

    @model_validator(mode="after")
    def _client_key_needs_cert(self) -> "ModelConfig":
        if self.client_key and not self.client_cert:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        if self.provider == "litellm" and (self.ca_bundle or self.client_cert):
            raise ValueError(
                "ca_bundle and client_cert apply to provider 'openai' only; litellm reads "
                "SSL_CERT_FILE for its CAs (or use provider 'openai' for an OpenAI-compatible API)"
            )
        return self

    @model_validator(mode="after")
    def _native_needs_http(self) -> "ModelConfig":
        if set(self.apis) - {"chat"} and self.provider != "openai":
            raise ValueError("apis other than chat need provider 'openai' (a base_url)")
        return self

    @model_validator(mode="after")
    def _openai_needs_url(self) -> "ModelConfig":
        if self.provider == "openai" and not self.base_url:
            raise ValueError("provider 'openai' needs base_url (e.g. https://api.openai.com/v1)")
        return self


class ShadowConfig(Strict):
    """A candidate router/threshold evaluated on live traffic: logged, never acted on."""

    # The candidate scorer: default (learned) or heuristic.
    router: str
    # The candidate threshold.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class CascadeConfig(Strict):
    """Try the route's small tier first; escalate to its largest tier when a check fails."""

    # Checks of the small answer that escalate to the large tier: empty, truncated (finish_reason
    # length), refusal.
    escalate_on: tuple[Literal["empty", "truncated", "refusal"], ...] = (
        "empty",
        "truncated",
        "refusal",
    )
    min_mean_logprob: float | None = Field(default=None, le=0)  # where the upstream returns them
    # A learned answer check (gateway/router/verifier.py): escalate when its score (P(the large
    # answer is better)) >= threshold; None: the artifact's recorded threshold. `frugal router
    # calibrate --verifier NAME` turns an escalation share or quality floor into a threshold.
    verifier: str | None = None
    # Verifier score at or above which the answer is escalated; null: the artifact's recorded
    # threshold.
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # Streamed requests: "bypass" streams the small answer unchecked; "check" generates it
    # whole, checks it, then replays it as a stream or streams the large answer instead (the
    # client sees no token before the small answer is complete).
    stream: Literal["bypass", "check"] = "bypass"
    # 2: a second small sample (temperature as sent) for the verifier's agreement signal; it
    # doubles the small tier's cost and time, so only for local models.
    samples: int = Field(default=1, ge=1, le=2)
    # Mix the route's prompt-router score into the check: escalate on w x z(router) + (1 - w) x
    # z(verifier) (z: standardised as recorded in the verifier artifact, which names the router
    # it was fitted for: the default router, minilm-dq8-g). "auto": the recorded weight and
    # threshold; a number in 0..1: that weight (on the 0.05 grid, or give `threshold`); 0: the
    # verifier alone. A request whose decision has no score of that router (another router is
    # live) uses the verifier alone, with its own recorded threshold.
    mix: Literal["auto"] | float = 0.0

    @field_validator("verifier")
    @classmethod
    def _verifier_loads(cls, name: str | None) -> str | None:
        """Load the verifier now (once per process): a missing or broken artifact fails at
        start-up, naming the known ones, not on the first request."""
        if name is not None:
            from gateway.router.verifier import load_verifier

            load_verifier(name)
        return name

    @model_validator(mode="after")
    def _mix_recorded(self) -> "CascadeConfig":
        """A mix needs a verifier that records one, and a threshold for its weight."""
        if self.mix == 0:
            return self
        if not isinstance(self.mix, str) and not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix: {self.mix:g} is not within 0..1; give auto, 0 or a weight")
        if self.verifier is None:
            raise ValueError("mix needs `verifier` (the mixed score is router + verifier)")
        from gateway.router.verifier import load_verifier

        mix = load_verifier(self.verifier).mix
        if mix is None:
            raise ValueError(f"verifier {self.verifier!r} records no mix: retrain it with "
                             "`frugal router verifier train`, or set mix: 0")  # fmt: skip
        if not isinstance(self.mix, str) and self.threshold is None:
            mix.threshold_for(self.mix)  # ValueError naming the recorded weights
        return self


class AffinityConfig(Strict):
    """Keep a conversation on the model it started on while that provider's prompt cache is
    warm (gateway/affinity.py): `window_s` after its last turn."""

    # How long after its last turn a conversation stays on its model.
    window_s: float = Field(default=300.0, gt=0)


class RouteConfig(Strict):
    # Tiers this route may use.
    tiers: list[Tier] = Field(min_length=1)
    # The scorer: default (learned) or heuristic.
    router: str = "heuristic"
    # Score >= threshold: the route's largest tier; else its smallest.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # On failure, try the route's other candidates (same tier, then nearest tier).
    fallback: bool = True
    # A candidate router and threshold, logged on live traffic, never acted on.
    shadow: ShadowConfig | None = None
    cascade: CascadeConfig | None = None  # requests routed to the small tier (streams: `stream`)
    affinity: AffinityConfig | None = None  # conversations stay on their model (opt-in)
    learning: LearningConfig | None = None  # labels from live traffic (gateway/learning)


class Resilience(Strict):
    # Retries per model, only when the upstream surely did not process the request (nothing sent;
    # 429 or 5xx other than 504).
    retries: int = Field(default=2, ge=0, le=10)
    # First retry delay; exponential with jitter.
    backoff_s: float = Field(default=0.2, ge=0)
    # Longest retry delay.
    backoff_max_s: float = Field(default=2.0, ge=0)
    # A model that failed a request by its own fault is skipped this long.
    cooldown_s: float = Field(default=30.0, ge=0)


class ServerConfig(Strict):
    # Listen address. Not loopback is refused while auth.anonymous_team is set.
    host: str = "127.0.0.1"
    # Listen port.
    port: int = Field(default=8080, ge=0, le=65535)
    # Largest request body; a larger one gets 413.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(default=30.0, gt=0)  # the whole request body, else 408
    # uvicorn worker processes (`frugal serve --workers` overrides it).
    workers: int = Field(default=1, ge=1)
    # Proxies whose X-Forwarded-For is believed (CIDRs); from any other peer it is ignored.
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    # Log records waiting for the writer thread; beyond this they are dropped (and counted).
    log_queue_max: int = Field(default=10_000, ge=100)
    readyz_cache_s: float = Field(default=10.0, ge=0)  # /readyz reuses an upstream probe this long


class AuthConfig(Strict):
    # Requests without a key are served as this team, only to callers on loopback, decided per
    # request from the connection (gateway/peer.py; see server.trusted_proxies).
    anonymous_team: str | None = None


class BudgetSettings(Strict):
    """Budget enforcement (gateway/budget); docs/budgets.md explains each choice."""

    # When Redis fails: fail_open admits and accounts in process, then reconciles into Redis;
    # fail_closed answers 503. Default fail_open: an outage of the accounting store should not
    # become an outage of every model; local accounting keeps the overshoot bounded.
    on_store_error: Literal["fail_open", "fail_closed"] = "fail_open"
    # A reservation left by a crashed replica is released after this long. Keep it above the
    # longest request (streams included); a late settle still charges, exactly once.
    reservation_ttl_s: float = Field(default=900.0, ge=1)
    timezone: str = "UTC"  # calendar for day/week/month budgets (policies may override)
    reload_interval_s: float = Field(default=1.0, ge=0)  # policy file polling; 0 = no reload
    # How often spend accounted locally (store down) is replayed into the store.
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    # How long the per-day spend ledger is kept.
    spend_retention_days: int = Field(default=400, ge=1)
    admin_key_env: str = "FRUGAL_ADMIN_KEY"  # the /admin/ API's key is read from this variable
    # What a team without a policy gets: `unlimited` (no budget and no rate limit), `deny` (its
    # keys are refused with 403), or the name of a team whose policy it uses (with its own
    # counters). Start-up warns about keys of teams without a policy either way.
    default_policy: str = Field(default="unlimited", min_length=1)
    # fail_open: the most one replica lets one team spend (held or charged) while the store is
    # down, per outage; a replica that starts during an outage has no spend figures to start
    # from. null: no cap beyond the budgets (seeded from the last figures this replica saw).
    fail_open_allowance_usd: Decimal | None = Field(default=Decimal("5.00"), gt=0)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name)") from None
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FRUGAL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    # Redis for budgets, rate limits, the cache and stored responses: redis://, rediss://,
    # unix://, or redis+cluster://host:port for a Redis Cluster; null: an in-process store (one
    # replica). Never shown in a repr or a log;
    redis_url: str | None = Field(default=None, repr=False)  # may carry a password
    store: StoreSettings = StoreSettings()
    # Folder of keys.yaml and the team policy files (relative to the config file).
    policies_dir: Path = Path("policies")
    # Folder with tiktoken's BPE files, for machines without internet.
    tiktoken_cache_dir: Path | None = None
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    resilience: Resilience = Resilience()
    budget: BudgetSettings = BudgetSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if not self.models:
            raise ValueError("no models configured: add at least one under `models:`")
        clash = set(self.models) & set(self.routes)
        if clash:
            raise ValueError(f"names used both as a model and a route: {sorted(clash)}")
        for name, route in self.routes.items():
            have = {m.tier for m in self.models.values() if m.kind == "chat"}
            missing = [t.value for t in route.tiers if t not in have]
            if missing:
                raise ValueError(
                    f"route {name!r} lists tiers {missing} but no chat model has them; "
                    "add a model with that tier or remove the tier from the route"
                )
            judge = route.learning.judge if route.learning else None
            if judge is not None and (judge not in self.models
                                      or self.models[judge].kind != "chat"):  # fmt: skip
                raise ValueError(
                    f"routes.{name}.learning.judge: {judge!r} is not a chat model of `models:`; "
                    "name one of them"
                )
        for name, m in self.models.items():  # the budget hold must outlive an attempt
            if m.timeouts.total_s + HOLD_MARGIN_S > self.budget.reservation_ttl_s:
                raise ValueError(
                    f"models.{name}.timeouts.total_s ({m.timeouts.total_s:g} s) must be at "
                    f"least {HOLD_MARGIN_S:g} s below budget.reservation_ttl_s "
                    f"({self.budget.reservation_ttl_s:g} s); lower one or raise the other"
                )
        return self


class ConfigError(Exception):
    """A configuration file failed to load; the message names file, field and fix."""


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling in docs/reference/configuration.md",
    "missing": "add this field",
    "enum": "use one of the allowed values",
    "literal_error": "use one of the allowed values",
}


def _describe(path: Path | str, err: ValidationError) -> str:
    lines = [f"invalid configuration in {path}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        fix = _FIXES.get(e["type"], "correct the value")
        lines.append(f"  {field}: {e['msg']} (got {e.get('input')!r}); fix: {fix}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def load_settings(path: Path | None = None) -> Settings:
    """Load `path` (default: FRUGAL_CONFIG, else the embedded defaults) plus the environment."""
    if path is None:
        env_path = os.environ.get("FRUGAL_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG
    data = read_yaml(path)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None
    if settings.policies_dir and not settings.policies_dir.is_absolute():
        base = Path.cwd() if path == DEFAULT_CONFIG else path.parent
        settings = settings.model_copy(update={"policies_dir": base / settings.policies_dir})
    return settings
