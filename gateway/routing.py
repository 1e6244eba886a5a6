"""Route decisions: which tier and which models answer a request, and why.

A request naming a concrete model goes there (no fallback: the client pinned it). A request
naming a route is scored by the route's scorer; score >= threshold picks the route's most
capable tier, otherwise its cheapest. Fallback candidates follow, nearest tier first. Models
that cannot take the request (its images, tools, prompt length or API; capabilities.py) are
left out; a tier with none left gives way to the nearest that has one, and the reason says so."""

import hashlib
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway import capabilities
from gateway.capabilities import Capabilities, Needs
from gateway.config import TIER_ORDER, ModelConfig, RouteConfig, Settings, Tier
from gateway.errors import InvalidRequest, ModelNotFound, Unavailable
from gateway.providers.registry import missing_credential
from gateway.router import Scorer, load_scorer
from gateway.router.model_thread import run_model

log = logging.getLogger("frugal.route")

if TYPE_CHECKING:
    from gateway.budget.view import BudgetView


@dataclass(slots=True)
class Decision:
    route: str | None  # None when the client pinned a model
    tier: Tier
    candidates: list[str]  # model names in the order to try
    score: float | None = None
    reason: str = "pinned"
    extra: dict[str, Any] = field(default_factory=dict)
    # The reason as one of a small fixed set (metrics label it): pinned, score_above_threshold,
    # score_below_threshold, tier_unavailable, budget_threshold_raised, budget_small_tier,
    # budget_downgrade (set by the budget's reservation), capability (the tier picked could
    # not take the request), affinity (the conversation stayed on its model).
    category: str = "pinned"
    needs: Needs | None = None  # what the request needs of a model (capabilities.py)


@dataclass(slots=True)
class Live:
    """A route's scorer and threshold (live, or running in shadow), and its version: the
    scorer's name, plus a digest of a learned artifact's recorded metadata."""

    router: str
    scorer: Scorer
    threshold: float
    version: str = ""
    decisions: int = 0  # as a shadow: decisions scored, and how many agreed with the live one
    agreed: int = 0

    def __post_init__(self) -> None:
        if not self.version:
            self.version = scorer_version(self.scorer)


def scorer_version(scorer: Scorer) -> str:
    artifact = getattr(scorer, "artifact", None)
    meta = getattr(artifact, "meta", None)
    if not isinstance(meta, dict):
        return scorer.name
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()
    return f"{scorer.name}@{digest[:8]}"


class Router:
    def __init__(self, settings: Settings) -> None:
        self._models = settings.models
        self._routes = settings.routes
        self.unavailable = {
            name: env for name, m in self._models.items() if (env := missing_credential(m))
        }
        self.capabilities: dict[str, Capabilities] = {
            n: capabilities.of(m) for n, m in self._models.items()
        }
        self._windowed = {
            r: any(
                self.capabilities[n].max_input_tokens is not None
                for n, m in self._models.items() if m.tier in route.tiers and m.kind == "chat"
            )
            for r, route in self._routes.items()
        }  # fmt: skip
        self._scorers: dict[str, Scorer] = {}
        for r in self._routes.values():
            for name in (r.router, r.shadow.router if r.shadow else None):
                if name is not None and name not in self._scorers:
                    self._scorers[name] = load_scorer(name)
        # What each route scores with now: swapped whole by promote/rollback (learning/rollout.py)
        self.live: dict[str, Live] = {
            n: Live(r.router, self._scorers[r.router], r.threshold) for n, r in self._routes.items()
        }
        self.shadows: dict[str, Live] = {
            n: Live(r.shadow.router, self._scorers[r.shadow.router], r.shadow.threshold)
            for n, r in self._routes.items() if r.shadow is not None
        }  # fmt: skip

    def is_route(self, name: str) -> bool:
        return name in self._routes

    def model(self, name: str) -> ModelConfig:
        return self._models[name]

    def pinned(self, name: str, kind: str = "chat") -> Decision:
        cfg = self._models.get(name)
        if cfg is None or cfg.kind != kind:
            known = sorted([n for n, m in self._models.items() if m.kind == kind])
            if kind == "chat":
                known += sorted(self._routes)
            raise ModelNotFound(
                f"The model {name!r} does not exist on this gateway. Known: {', '.join(known)}",
                param="model",
            )
        if name in self.unavailable:
            raise Unavailable(
                f"The model {name!r} is not available: the gateway has no credential for it "
                f"(set {self.unavailable[name]} on the gateway)."
            )
        return Decision(None, cfg.tier, [name])

    def windowed(self, route_name: str) -> bool:
        """Whether a model of the route has a known context window (the prompt is then
        counted for routing even when no budget needs it)."""
        return self._windowed[route_name]

    def windows(self) -> dict[str, int | None]:
        """Each model's context window (None: unknown), for the context-length fallback."""
        return {n: c.max_input_tokens for n, c in self.capabilities.items()}

    async def decide(
        self, route_name: str, messages: Sequence[Mapping[str, Any]], tools: bool,
        budget: "BudgetView | None" = None, needs: Needs | None = None,
    ) -> Decision:  # fmt: skip
        route = self._routes[route_name]
        live = self.live[route_name]  # one read: a promotion mid-request does not mix routers
        scorer = live.scorer
        if scorer.blocking:
            score = await run_model(scorer.score, messages, tools)
        else:
            score = scorer.score(messages, tools)
        usable = self._usable_tiers(route)
        if not usable:
            raise Unavailable(f"No model of route {route_name!r} is available.")
        # A team near its budget: a higher threshold, or the cheapest tier whatever the score.
        threshold = budget.threshold(live.threshold) if budget else live.threshold
        large = score >= threshold and not (budget and budget.force_small)
        pick = max if large else min
        intended = pick(route.tiers, key=TIER_ORDER.__getitem__)
        above = score >= threshold
        reason = f"score {score:.3f} {'>=' if above else '<'} threshold {threshold:g}"
        category = "score_above_threshold" if above else "score_below_threshold"
        tier = intended
        if intended not in usable:
            tier = min(usable, key=lambda t: abs(TIER_ORDER[t] - TIER_ORDER[intended]))
            reason += f"; tier {intended.value} unavailable"
            category = "tier_unavailable"
        if budget and budget.note and (threshold != live.threshold or budget.force_small):
            would = score >= live.threshold
            action = "small tier forced" if budget.force_small else "threshold raised"
            reason += f"; budget: {budget.note}, {action}"
            reason += "; downgraded" if would and not large else ""
            category = "budget_small_tier" if budget.force_small else "budget_threshold_raised"
        refused = self._refused(route, needs) if needs is not None else {}
        if refused:  # models that cannot take the request; a tier with none left: the nearest
            assert needs is not None
            capable, note = self._capable_tier(route_name, route, tier, refused)
            reason += f"; {note}" if note else ""
            category = "capability" if capable != tier else category
            tier = capable
        decision = Decision(
            route_name, tier, self._candidates(route, tier, refused), score, reason,
            {"scorer": scorer.name, "router_version": live.version}, category, needs,
        )  # fmt: skip
        shadow = self.shadows.get(route_name)
        if shadow is not None:
            await self._shadow(route_name, shadow, messages, tools, decision)
        return decision

    async def _shadow(
        self, route_name: str, shadow: "Live", messages: Sequence[Mapping[str, Any]],
        tools: bool, live: Decision,
    ) -> None:  # fmt: skip
        """Log what a candidate router/threshold would have decided; never act on it."""
        scorer = shadow.scorer
        shadow.decisions += 1
        try:
            if scorer.blocking:
                score = await run_model(scorer.score, messages, tools)
            else:
                score = scorer.score(messages, tools)
        except Exception:  # a shadow must never fail the live request
            log.exception("shadow router %s failed on route %s", shadow.router, route_name)
            return
        route = self._routes[route_name]
        pick = max if score >= shadow.threshold else min
        tier = pick(route.tiers, key=TIER_ORDER.__getitem__)
        live.extra["shadow"] = {"router": shadow.router, "score": score, "tier": tier.value,
                                "router_version": shadow.version}  # fmt: skip
        if tier == live.tier:
            shadow.agreed += 1
        log.info(
            "shadow route=%s live_router=%s live_score=%.4f live_tier=%s shadow_router=%s "
            "shadow_threshold=%g shadow_score=%.4f shadow_tier=%s agree=%s shadow_version=%s",
            route_name, live.extra.get("scorer"), live.score or 0.0, live.tier.value,
            shadow.router, shadow.threshold, score, tier.value, tier == live.tier, shadow.version,
        )  # fmt: skip

    def escalation(self, d: Decision, note: str) -> Decision | None:
        """The same route's largest usable tier, for a cascade; None if there is none above."""
        assert d.route is not None
        route = self._routes[d.route]
        top = max(route.tiers, key=TIER_ORDER.__getitem__)
        refused = self._refused(route, d.needs) if d.needs is not None else {}
        candidates = self._tier_models(top, refused)
        if top == d.tier or not candidates:
            return None
        reason = f"{d.reason}; {note}, escalated to {top.value}"
        return Decision(
            d.route, top, candidates, d.score, reason, d.extra, "cascade_escalated", d.needs
        )

    def baseline_model(self, route_name: str | None) -> str | None:
        """The route's large model: the first model of its most capable tier (the price that
        savings are measured against), or None for a pinned request."""
        if route_name is None:
            return None
        top = max(self._routes[route_name].tiers, key=TIER_ORDER.__getitem__)
        for n, m in self._models.items():
            if m.tier == top and m.kind == "chat":
                return n
        return None

    def stick(self, d: Decision, model: str) -> str | None:
        """Put `model` first in `d` (conversation affinity) when the route may use it and it
        can take the request; otherwise why not (None: done)."""
        assert d.route is not None
        cfg = self._models.get(model)
        if cfg is None or cfg.kind != "chat" or cfg.tier not in self._routes[d.route].tiers:
            return "no longer on the route"
        if model in self.unavailable:
            return "unavailable"
        why = capabilities.refusal(self.capabilities[model], d.needs) if d.needs else None
        if why is not None:
            return why
        d.tier = cfg.tier
        d.candidates = [model, *(m for m in d.candidates if m != model)]
        return None

    def _refused(self, route: RouteConfig, needs: Needs) -> dict[str, str]:
        """The route's models that cannot take a request with `needs`, and why."""
        out = {}
        for t in route.tiers:
            for n in self._tier_models(t):
                why = capabilities.refusal(self.capabilities[n], needs)
                if why is not None:
                    out[n] = why
        return out

    def _capable_tier(
        self, route_name: str, route: RouteConfig, tier: Tier, refused: dict[str, str]
    ) -> tuple[Tier, str]:
        """The tier to use when `refused` models cannot take the request: `tier` when one of
        its models can, else the nearest that can (the larger on a tie); what the reason adds."""
        own = self._tier_models(tier)
        skipped = {m: why for m, why in refused.items() if m in own}
        if len(skipped) < len(own):
            listed = ", ".join(f"{m}: {why}" for m, why in skipped.items())
            return tier, f"skipped {listed}" if listed else ""
        able = [t for t in self._usable_tiers(route) if self._tier_models(t, refused)]
        if not able:
            why = "; ".join(f"{m}: {w}" for m, w in refused.items())
            raise InvalidRequest(
                f"No model of route {route_name!r} can take this request ({why}).",
                param="messages", code="no_capable_model",
            )  # fmt: skip
        near = min(able, key=lambda t: (abs(TIER_ORDER[t] - TIER_ORDER[tier]), -TIER_ORDER[t]))
        why = "; ".join(sorted(set(skipped.values())))
        return near, f"tier {tier.value} cannot take it ({why}), routed to {near.value}"

    def _usable_tiers(self, route: RouteConfig) -> list[Tier]:
        return [t for t in route.tiers if self._tier_models(t)]

    def _tier_models(self, tier: Tier, refused: Collection[str] = ()) -> list[str]:
        return [
            n
            for n, m in self._models.items()
            if m.tier == tier and m.kind == "chat" and n not in self.unavailable
            and n not in refused
        ]  # fmt: skip

    def _candidates(
        self, route: RouteConfig, tier: Tier, refused: Collection[str] = ()
    ) -> list[str]:
        out = self._tier_models(tier, refused)
        if route.fallback:
            others = sorted(
                (t for t in self._usable_tiers(route) if t != tier),
                key=lambda t: (abs(TIER_ORDER[t] - TIER_ORDER[tier]), TIER_ORDER[t]),
            )
            for t in others:
                out += self._tier_models(t, refused)
        return out
