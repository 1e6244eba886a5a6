"""The cache policy that applies to one request: global settings, then the route's override,
then the team's (from the `cache:` section, or later from the team's policy file)."""

from dataclasses import dataclass
from urllib.parse import quote

from gateway.cache.settings import CacheOverride, CacheSettings

SHARED_SCOPE = "shared"


def team_scope(team: str) -> str:
    """A key-safe scope for a team: no `:` and no glob characters, so purges match exactly."""
    return "team:" + quote(team, safe="")


@dataclass(frozen=True, slots=True)
class Policy:
    enabled: bool
    ttl_s: int
    max_entry_bytes: int
    cache_sampling: bool
    scope: str  # team_scope(team), or SHARED_SCOPE
    coalesce: bool
    semantic: bool


def resolve(
    cfg: CacheSettings, team: str, route: str, team_override: CacheOverride | None = None
) -> Policy:
    """`team_override` (e.g. from a team policy file) wins over `cfg.teams[team]`."""
    layers = [cfg.routes.get(route), team_override or cfg.teams.get(team)]
    values = {
        "enabled": cfg.enabled,
        "ttl_s": cfg.ttl_s,
        "max_entry_bytes": cfg.max_entry_bytes,
        "cache_sampling": cfg.cache_sampling,
        "shared_scope": cfg.shared_scope,
        "coalesce": cfg.coalesce,
        "semantic": cfg.semantic.default,
    }
    for layer in layers:
        if layer is not None:
            values.update(layer.model_dump(exclude_none=True))
    return Policy(
        enabled=bool(values["enabled"]),
        ttl_s=int(values["ttl_s"]),
        max_entry_bytes=int(values["max_entry_bytes"]),
        cache_sampling=bool(values["cache_sampling"]),
        scope=SHARED_SCOPE if values["shared_scope"] else team_scope(team),
        coalesce=bool(values["coalesce"]),
        semantic=bool(values["semantic"]) and cfg.semantic.enabled,
    )
