"""After routing: what the team's policy allows (models, tiers, routes), the $0-only mode of
an exhausted budget, and the max_tokens cap of the soft threshold."""

from decimal import Decimal

from gateway.budget.enforcer import Admission
from gateway.budget.estimate import affordable_output, requested_output
from gateway.budget.view import quota_error, tightest
from gateway.call import Call
from gateway.config import ModelConfig
from gateway.errors import PermissionDenied


def _free(m: ModelConfig) -> bool:
    return m.price.input_per_mtok == 0 and m.price.output_per_mtok == 0


def authorize(call: Call, adm: Admission, models: dict[str, ModelConfig]) -> None:
    d, team = call.decision, adm.team
    if d is None or team is None:
        return
    allow = team.policy.allow
    if d.route is not None and allow.routes and d.route not in allow.routes:
        raise PermissionDenied(f"Team {team.name!r} may not use route {d.route!r}; allowed: "
                               f"{', '.join(allow.routes)}.", param="model")  # fmt: skip
    keep = [
        m for m in d.candidates
        if (not allow.models or m in allow.models)
        and (not allow.tiers or models[m].tier in allow.tiers)
    ]  # fmt: skip
    if not keep:
        raise PermissionDenied(
            f"Team {team.name!r} may not use {', '.join(d.candidates)} (allowed models: "
            f"{', '.join(allow.models) or 'any'}; tiers: "
            f"{', '.join(t.value for t in allow.tiers) or 'any'}).", param="model",
        )  # fmt: skip
    if adm.view is not None and adm.view.free_only:
        low = tightest(adm.stands)
        keep = [m for m in keep if _free(models[m])]
        if not keep:
            assert low is not None
            raise quota_error(team, low, None)
        d.reason += f"; budget: {adm.view.note}"
    if keep != d.candidates:
        d.candidates = keep
        d.tier = models[keep[0]].tier
    if adm.view is not None and adm.view.cap_max_tokens:
        _cap(call, adm, models[keep[0]])


def _cap(call: Call, adm: Admission, model: ModelConfig) -> None:
    low = tightest(adm.stands)
    if low is None:
        return
    asked = requested_output(call.body) or model.max_output_tokens
    can = affordable_output(max(low.remaining, Decimal(0)), adm.prompt_tokens, call.body, model)
    if can >= asked:
        return
    can = max(can, 1)  # the reservation decides whether even that fits
    field = "max_completion_tokens" if "max_completion_tokens" in call.body else "max_tokens"
    call.body[field] = can
    call.extra_headers["x-frugal-max-tokens-capped"] = str(can)
