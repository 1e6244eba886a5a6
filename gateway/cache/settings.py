"""The `cache:` section of the gateway configuration, with per-route and per-team overrides.

Precedence, lowest first: the section's own values, then `routes[<requested model>]`, then
`teams[<team>]` (a team can always opt itself out). Unknown keys are errors, like everywhere
else in the configuration."""

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticSettings(_Strict):
    # Start the semantic backend (needs Redis with RediSearch); requests still opt in through
    # `default` or a route/team `semantic: true`.
    enabled: bool = False
    redis_url: str | None = Field(default=None, repr=False)  # default: the gateway's `redis_url`
    threshold: float = Field(default=0.88, gt=0.0, le=1.0)  # cosine similarity for a hit
    default: bool = False  # semantic lookups for requests whose route/team says nothing
    # RediSearch index name.
    index: str = Field(default="frugal-semantic-v1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Longest semantic lookup; slower counts as a miss.
    timeout_ms: int = Field(default=50, ge=1, le=10_000)
    # Threads for embedding the last user turn.
    embed_threads: int = Field(default=1, ge=1, le=8)


class CacheOverride(_Strict):
    """Per-route or per-team settings; a field left out keeps the less specific value."""

    # Cache on or off.
    enabled: bool | None = None
    # Entry lifetime in seconds.
    ttl_s: int | None = Field(default=None, ge=1)
    # Largest answer stored.
    max_entry_bytes: int | None = Field(default=None, ge=256)
    # Cache sampling requests (temperature > 0 without a seed).
    cache_sampling: bool | None = None
    # Share entries between teams.
    shared_scope: bool | None = None
    # Identical requests in flight share one upstream call.
    coalesce: bool | None = None
    # Semantic lookups on or off.
    semantic: bool | None = None


class CacheSettings(_Strict):
    # The response cache on or off.
    enabled: bool = True
    # Entry lifetime in seconds.
    ttl_s: int = Field(default=3600, ge=1)
    # Largest answer stored; larger ones are not cached.
    max_entry_bytes: int = Field(default=256 * 1024, ge=256)
    # In-process cache only (no redis_url): beyond these the least recently used entries go.
    max_entries: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)  # keys and values
    # Cache sampling requests (temperature absent or > 0, and no seed)?
    cache_sampling: bool = False
    # Key entries under one scope shared by every team instead of the team's own scope.
    shared_scope: bool = False
    coalesce: bool = True  # identical requests in flight share one upstream call
    # Longest wait for an identical request in flight before calling upstream.
    coalesce_wait_s: float = Field(default=300.0, gt=0)
    timeout_ms: int = Field(default=50, ge=1, le=10_000)  # per cache operation
    semantic: SemanticSettings = SemanticSettings()
    # Overrides by requested model or route name.
    routes: dict[str, CacheOverride] = Field(default_factory=dict)
    # Overrides by team (win over routes).
    teams: dict[str, CacheOverride] = Field(default_factory=dict)
