"""Team policies: the YAML files in the policies folder (every `*.yaml` except keys.yaml).

Each file holds `teams:`, a mapping of team name to its policy: budgets per calendar period
(day, week, month in the team's time zone) plus an optional lifetime cap, per-key sub-budgets,
rate limits, allowed models/tiers/routes, and what happens at the soft threshold and at the
hard limit. Files are validated at load; unknown keys are errors naming file, field and fix.
docs/budgets.md has a complete example (policies/teams.yaml).

A team that no file names gets `budget.default_policy`: `unlimited` (no budget, no limit),
`deny` (refused with 403), or the name of a defined team whose policy it then uses under its
own name (its own counters). An empty policy set, a missing folder and keys of teams without a
policy are logged as warnings: they are how budgets silently stop applying.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from gateway.config import ConfigError, Tier
from gateway.keys import KEYS_FILE


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        raise ValueError(msg) from None


def _check_zone(name: str) -> str:
    _zone(name)
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]

PERIODS = ("day", "week", "month", "lifetime")
Period = Literal["day", "week", "month", "lifetime"]
SoftAction = Literal["raise_threshold", "force_small_tier", "cap_max_tokens", "alert"]
NAME = r"^[A-Za-z0-9._-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budgets(_Strict):
    """USD per calendar period; a period left out has no limit."""

    # USD per calendar day (local midnight to midnight).
    day: Decimal | None = Field(default=None, gt=0)
    # USD per calendar week (from Monday).
    week: Decimal | None = Field(default=None, gt=0)
    # USD per calendar month (from the 1st).
    month: Decimal | None = Field(default=None, gt=0)
    # USD cap that never resets.
    lifetime: Decimal | None = Field(default=None, gt=0)

    def items(self) -> list[tuple[Period, Decimal]]:
        out: list[tuple[Period, Decimal]] = []
        for p in ("day", "week", "month", "lifetime"):
            v = getattr(self, p)
            if v is not None:
                out.append((p, v))
        return out


class Limits(_Strict):
    rpm: int | None = Field(default=None, ge=1)  # requests per minute
    tpm: int | None = Field(default=None, ge=1)  # tokens (prompt + completion) per minute


class Allow(_Strict):
    """What a team may use; an empty list allows everything of that kind."""

    # Models the team may name or be routed to (403 otherwise).
    models: list[str] = Field(default_factory=list)
    # Tiers the team may use.
    tiers: list[Tier] = Field(default_factory=list)
    # Routes the team may use.
    routes: list[str] = Field(default_factory=list)


def _default_actions() -> list[SoftAction]:
    return ["force_small_tier"]


class Soft(_Strict):
    at: float = Field(default=0.8, gt=0, lt=1)  # fraction of a budget spent
    # Any of raise_threshold, force_small_tier, cap_max_tokens, alert.
    actions: list[SoftAction] = Field(default_factory=_default_actions)
    # What raise_threshold adds to the route's threshold.
    raise_threshold_by: float = Field(default=0.2, ge=0, le=1)
    # URL that alert POSTs to, once per budget period.
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class Hard(_Strict):
    # refuse: HTTP 429 insufficient_quota. free_models_only: only models priced $0 answer.
    action: Literal["refuse", "free_models_only"] = "refuse"


class KeyPolicy(_Strict):
    budgets: Budgets = Budgets()
    limits: Limits = Limits()


class TeamPolicy(_Strict):
    timezone: TimeZoneName | None = None  # default: the file's, else config `budget.timezone`
    budgets: Budgets = Budgets()
    limits: Limits = Limits()
    allow: Allow = Allow()
    soft: Soft | None = None
    hard: Hard = Hard()
    # true: none of the team's traffic is sampled, memoed or kept as a label (gateway/learning)
    learning_opt_out: bool = False
    keys: dict[str, KeyPolicy] = Field(default_factory=dict)  # key id -> sub-budget, limits

    @field_validator("keys")
    @classmethod
    def _key_ids(cls, v: dict[str, KeyPolicy]) -> dict[str, KeyPolicy]:
        import re

        bad = [k for k in v if not re.fullmatch(r"[0-9a-f]{12}", k)]
        if bad:
            raise ValueError(f"key ids must be the 12 hex digits of keys.yaml `id`, got {bad}")
        return v


class PolicyFile(_Strict):
    # IANA zone for the file's teams (default: config budget.timezone).
    timezone: TimeZoneName | None = None
    teams: dict[str, TeamPolicy] = Field(default_factory=dict)

    @field_validator("teams")
    @classmethod
    def _names(cls, v: dict[str, TeamPolicy]) -> dict[str, TeamPolicy]:
        import re

        bad = [t for t in v if not re.fullmatch(NAME, t)]
        if bad:
            raise ValueError(f"team names may use letters, digits, '.', '_', '-' only: {bad}")
        return v


@dataclass(frozen=True, slots=True)
class Team:
    """One team's resolved policy (time zone filled in)."""

    name: str
    tz: ZoneInfo
    policy: TeamPolicy

    def key(self, key_id: str | None) -> KeyPolicy | None:
        return self.policy.keys.get(key_id) if key_id else None


UNLIMITED, DENY = "unlimited", "deny"
log = logging.getLogger("frugal.policies")


@dataclass(frozen=True, slots=True)
class Policies:
    teams: Mapping[str, Team]
    files: tuple[str, ...] = ()
    default: str = UNLIMITED  # budget.default_policy
    _derived: dict[str, Team] = field(default_factory=dict, repr=False, compare=False)

    @property
    def deny_unknown(self) -> bool:
        return self.default == DENY

    def team(self, name: str) -> Team | None:
        """The team's policy; for a team without one, the default policy's (None: unlimited,
        or refused when `deny_unknown`)."""
        found = self.teams.get(name)
        if found is not None or self.default in (UNLIMITED, DENY):
            return found
        derived = self._derived.get(name)
        if derived is None:
            base = self.teams[self.default]
            if len(self._derived) > 10_000:
                self._derived.clear()
            derived = self._derived[name] = Team(name, base.tz, base.policy)
        return derived

    def covers(self, team: str) -> bool:
        """Does a policy (the team's own or a named default) apply to this team?"""
        return team in self.teams or self.default not in (UNLIMITED, DENY)


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling in docs/reference/policies.md",
    "missing": "add this field",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "greater_than": "use a positive amount",
    "decimal_parsing": 'write the amount in USD as a number, e.g. "25.00"',
}


def _describe(path: Path, err: ValidationError) -> str:
    lines = [f"invalid policy file {path}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        fix = _FIXES.get(e["type"], "correct the value")
        lines.append(f"  {field}: {e['msg']} (got {e.get('input')!r}); fix: {fix}")
    return "\n".join(lines)


def policy_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.yaml") if p.name != KEYS_FILE)


def load_file(path: Path) -> PolicyFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"cannot read policy file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with `teams:`")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None


def load_policies(folder: Path, default_tz: str = "UTC", default: str = UNLIMITED) -> Policies:
    """Load and validate every policy file; a team defined twice is an error, and so is a
    `default` naming a team no file defines."""
    teams: dict[str, Team] = {}
    origin: dict[str, Path] = {}
    files = policy_files(folder)
    for path in files:
        parsed = load_file(path)
        for name, pol in parsed.teams.items():
            if name in teams:
                raise ConfigError(
                    f"invalid policy file {path}: teams.{name} is already defined in "
                    f"{origin[name]}; fix: keep one definition per team"
                )
            tz = _zone(pol.timezone or parsed.timezone or default_tz)
            teams[name] = Team(name, tz, pol)
            origin[name] = path
    if default not in (UNLIMITED, DENY) and default not in teams:
        raise ConfigError(
            f"budget.default_policy is {default!r}, but no policy file in {folder} defines that "
            f"team; fix: use {UNLIMITED!r}, {DENY!r} or the name of a team defined there"
        )
    if not teams:
        why = "does not exist" if not folder.is_dir() else "holds no team policy"
        log.warning(
            "policies_dir %s %s: no team has its own budget or rate limit "
            "(budget.default_policy=%s applies to every team)", folder, why, default,
        )  # fmt: skip
    return Policies(teams, tuple(str(p) for p in files), default)


def warn_unpoliced(policies: Policies, key_teams: Iterable[str]) -> list[str]:
    """Log a warning naming the teams that have keys but no policy; returns them."""
    bare = sorted({t for t in key_teams if not policies.covers(t)})
    if bare:
        what = "are refused (403)" if policies.deny_unknown else "have no budget and no limit"
        log.warning("keys exist for teams without a policy, which %s (budget.default_policy=%s):"
                    " %s", what, policies.default, ", ".join(bare))  # fmt: skip
    return bare
