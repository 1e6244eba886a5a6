"""One learning call: a model asked on behalf of the label loop, costed, and charged to the
learning account (team `_learning`: its own spend ledger, log line and metrics, never the
team whose request was sampled), with the route's daily learning budget held first."""

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway import pricing, tokens
from gateway.budget.enforcer import Reservation, new_rid
from gateway.budget.estimate import cap_field, worst_case
from gateway.budget.money import from_nano, to_nano
from gateway.call import Call
from gateway.config import ModelConfig, Tier
from gateway.keys import Principal
from gateway.learning import judge
from gateway.learning.settings import LEARNING_TEAM
from gateway.providers.base import Endpoint
from gateway.record import record
from gateway.router.heuristic import text_of
from gateway.routing import Decision
from gateway.usage import Usage

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("frugal.learning")
_PRINCIPAL = Principal(LEARNING_TEAM, None)


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    text: str
    cost: Decimal


def body_for(body: dict[str, Any], cfg: ModelConfig, cap: int) -> dict[str, Any]:
    """The request body for `cfg`: never streamed, output capped at `cap` tokens."""
    drop = ("stream", "stream_options", "max_tokens", "max_completion_tokens")
    out = {k: v for k, v in body.items() if k not in drop}
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = min(cap, cfg.max_output_tokens, int(asked) if isinstance(asked, int) else cap)
    out[cap_field(cfg.model, chat=True)] = limit
    out["model"] = cfg.model
    return out


def worst(
    rt: "Runtime", model: str, body: dict[str, Any], cap: int, prompt_tokens: int | None = None
) -> Decimal:
    """The most asking `model` the request `body` (output capped at `cap`) can cost;
    `prompt_tokens`: its messages' tokens when the caller has counted them already."""
    cfg = rt.router.model(model)
    sent = body_for(body, cfg, cap)
    if prompt_tokens is None:
        prompt_tokens = tokens.count_messages(sent.get("messages") or [])
    return worst_case(prompt_tokens, sent, cfg)


def judge_worst(
    rt: "Runtime", model: str, prompt_tokens: int, reference: str | None, cap: int
) -> Decimal:
    """The most one judge call can cost: the judge prompt's fixed part (the rubric and the
    headings, counted once), the conversation (`prompt_tokens`: at most its tokens, clipped),
    the reference answer, and both answers at `cap` tokens each; output capped at `cap`."""
    extra = tokens.count_text(reference) if reference else 0
    n = judge.fixed_tokens() + prompt_tokens + extra + 2 * cap
    return worst_case(n, {"max_tokens": cap}, rt.router.model(model))


Wait = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


async def ask(
    rt: "Runtime", candidates: list[str], body: dict[str, Any], cap: int, request_id: str,
    route: str, purpose: str, wait: Wait = _nothing,
) -> Answer:  # fmt: skip
    """Call the first candidate that answers (with the gateway's retries and fallback); record
    the call as team `_learning` and write its spend ledger; raise when none answers. `wait` is
    awaited before the call and again before recording it (the label loop yields to client
    requests: gateway/learning/in_flight.py)."""
    await wait()
    attempts: list[Any] = []
    started = time.perf_counter()
    cfgs = {m: rt.router.model(m) for m in candidates}
    model, completion = await rt.resilient.call(
        candidates,
        lambda m: rt.providers[m].complete(Endpoint.chat, body_for(body, cfgs[m], cap)),
        attempts,
        request_id,
    )
    took = time.perf_counter() - started
    await wait()
    cfg = cfgs[model]
    choices = completion.body.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    text = text_of((first.get("message") or {}).get("content"))
    usage = completion.usage or Usage(
        tokens.count_messages(body.get("messages") or []), tokens.count_text(text), estimated=True
    )
    tier = Tier(cfg.tier)
    call = Call(request_id, _PRINCIPAL, Endpoint.chat, body,
                decision=Decision(route, tier, [model], reason=f"learning: {purpose}",
                                  category="learning"))  # fmt: skip
    call.started = time.perf_counter() - took  # the log line's `ms`: the upstream call's time
    call.attempts = attempts
    call.model = model
    call.usage = usage
    call.cost = pricing.cost(usage, cfg.price, pricing.served_tier(usage, body))
    call.outcome = f"learning_{purpose}"
    record(call)
    tz = rt.budget.enforcer.default_tz
    held = Reservation(new_rid(), LEARNING_TEAM, tz, [], [], 0, False, None)
    await rt.budget.enforcer.settle(call, held)  # the `_learning` spend ledger
    return Answer(model, text, call.cost)


class DailyBudget:
    """A route's learning spend per UTC day, held before the calls and settled after them."""

    def __init__(self, rt: "Runtime") -> None:
        self.rt = rt

    def key(self, route: str) -> str:
        day = datetime.now(UTC).date().isoformat()
        return f"frugal:learn:spent:{route}:{day}"

    async def hold(self, route: str, limit: Decimal, amount: Decimal) -> str | None:
        """The key held against, or None when `amount` does not fit in what is left today."""
        key = self.key(route)
        nano = to_nano(amount)
        total = await self.rt.store.incr(key, nano, ttl_s=2 * 86_400)
        if total > to_nano(limit):
            await self.rt.store.incr(key, -nano)
            return None
        return key

    async def settle(self, key: str, held: Decimal, spent: Decimal) -> None:
        delta = to_nano(spent) - to_nano(held)
        if delta:
            await self.rt.store.incr(key, delta)

    async def spent(self, route: str) -> Decimal:
        raw = await self.rt.store.get(self.key(route))
        return from_nano(int(raw or b"0"))
