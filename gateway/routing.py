"""Route decisions: which tier and which models answer a request, and why.

A request naming a concrete model goes there (no fallback: the client pinned it). A request
naming a route is scored by the route's scorer; score >= threshold picks the route's most
capable tier, otherwise its cheapest. Fallback candidates follow, nearest tier first."""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config import TIER_ORDER, ModelConfig, RouteConfig, Settings, Tier
from gateway.errors import ModelNotFound, Unavailable
from gateway.providers.registry import missing_credential
from gateway.router import Scorer, load_scorer

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


class Router:
    def __init__(self, settings: Settings) -> None:
        self._models = settings.models
        self._routes = settings.routes
        self.unavailable = {
            name: env for name, m in self._models.items() if (env := missing_credential(m))
        }
        self._scorers: dict[str, Scorer] = {}
        for r in self._routes.values():
            if r.router not in self._scorers:
                self._scorers[r.router] = load_scorer(r.router)

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

    async def decide(
        self, route_name: str, messages: Sequence[Mapping[str, Any]], tools: bool,
        budget: "BudgetView | None" = None,
    ) -> Decision:  # fmt: skip
        route = self._routes[route_name]
        scorer = self._scorers[route.router]
        if scorer.blocking:
            score = await asyncio.to_thread(scorer.score, messages, tools)
        else:
            score = scorer.score(messages, tools)
        usable = self._usable_tiers(route)
        if not usable:
            raise Unavailable(f"No model of route {route_name!r} is available.")
        # A team near its budget: a higher threshold, or the cheapest tier whatever the score.
        threshold = budget.threshold(route.threshold) if budget else route.threshold
        large = score >= threshold and not (budget and budget.force_small)
        pick = max if large else min
        intended = pick(route.tiers, key=TIER_ORDER.__getitem__)
        reason = f"score {score:.3f} {'>=' if score >= threshold else '<'} threshold {threshold:g}"
        if budget and budget.note and (threshold != route.threshold or budget.force_small):
            would = score >= route.threshold
            action = "small tier forced" if budget.force_small else "threshold raised"
            reason += f"; budget: {budget.note}, {action}"
            reason += "; downgraded" if would and not large else ""
        tier = intended
        if intended not in usable:
            tier = min(usable, key=lambda t: abs(TIER_ORDER[t] - TIER_ORDER[intended]))
            reason += f"; tier {intended.value} unavailable"
        return Decision(
            route_name, tier, self._candidates(route, tier), score, reason,
            {"scorer": scorer.name},
        )  # fmt: skip

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

    def _usable_tiers(self, route: RouteConfig) -> list[Tier]:
        return [t for t in route.tiers if self._tier_models(t)]

    def _tier_models(self, tier: Tier) -> list[str]:
        return [
            n
            for n, m in self._models.items()
            if m.tier == tier and m.kind == "chat" and n not in self.unavailable
        ]

    def _candidates(self, route: RouteConfig, tier: Tier) -> list[str]:
        out = self._tier_models(tier)
        if route.fallback:
            others = sorted(
                (t for t in self._usable_tiers(route) if t != tier),
                key=lambda t: (abs(TIER_ORDER[t] - TIER_ORDER[tier]), TIER_ORDER[t]),
            )
            for t in others:
                out += self._tier_models(t)
        return out
