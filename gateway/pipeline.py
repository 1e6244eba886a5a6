"""The request path, in order, in one place. Handlers parse and authenticate, then call
`generate` or `embed` here.

    1 parse + validate  (app)        5 call the provider: retries, timeouts, fallback
    2 authenticate      (app)        6 usage: reported, or estimated with tiktoken
    3 route: pinned model or scorer  7 cost = usage x price (Decimal)
    4 upstream body (model replaced) 8 answer with x-frugal-* headers; log the request

Budgets (gateway/budget): `admit` (rate limits + budget snapshot) before routing; the route
sees the remaining budget; `authorize` after it; `reserve` the worst case just before the
upstream call; `settle` after it (streams: in `finish`), `release` when it fails.
"""

import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway import affinity, capabilities, cascade, pricing, tokens
from gateway.apis import native
from gateway.budget import Admission, Reservation
from gateway.budget.allow import authorize
from gateway.budget.estimate import cap_field, choices, prompt_extra, with_output_cap
from gateway.cache import replay
from gateway.cache.entry import Entry
from gateway.cache.service import Lookup
from gateway.call import Call
from gateway.config import CascadeConfig
from gateway.errors import UpstreamError
from gateway.providers.base import Completion, Endpoint
from gateway.record import record
from gateway.router.heuristic import text_of
from gateway.routing import Decision
from gateway.runtime import Runtime
from gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest
from gateway.streaming import StreamReply, relay
from gateway.usage import Usage


@dataclass(slots=True)
class Reply:
    body: dict[str, Any]
    headers: dict[str, str]


async def generate(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest
) -> Reply | StreamReply:
    budget = rt.budget.enforcer
    admission = budget.prepare(call, lambda: prompt_tokens(call))
    # A pinned model for a team whose snapshot cannot change the decision: rate limits and the
    # budget snapshot are checked together with the hold (one round trip), after the cache.
    joint = budget.joint(admission) and not rt.router.is_route(req.model)
    if not joint:
        await budget.check(call, admission)  # rate limits and the budget snapshot, first
    call.decision = await _route(rt, call, req, admission)
    # Skip cooling models now, so the cache key and the budget hold name the model called.
    call.decision.candidates = rt.resilient.order(call.decision.candidates)
    if native.speaks(rt, call, call.decision.candidates[0]):
        call.cache_read = call.cache_write = False  # passed through: its answer is not chat
    authorize(call, admission, rt.settings.models)  # allowed models; $0-only; max_tokens cap
    lookup = await rt.cache.lookup(call)  # exact, then semantic; identical misses coalesce
    if lookup.entry is not None:
        if joint:
            await budget.check(call, admission)  # a hit counts against the rate limits too
        reply = _cached(rt, call, req, lookup)
        rt.budget.enforcer.later(rt.budget.enforcer.record_free(call, admission))
        return reply
    try:
        return await _generate(rt, call, req, admission, lookup, joint)
    finally:
        rt.cache.release(lookup)  # identical requests waiting on this one never hang


async def _generate(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, admission: Admission,
    lookup: Lookup, joint: bool,
) -> Reply | StreamReply:  # fmt: skip
    budget = rt.budget.enforcer
    if joint:
        held = await budget.check_and_reserve(call, admission)
    else:
        held = await budget.reserve(call, admission)  # the worst case, before the call
    cfg = _cascading(rt, call, req)  # the route's cascade, when its small tier answers first
    if req.stream and cfg is None:
        return await _stream(rt, call, req, held, lookup)
    chat = call.endpoint is Endpoint.chat
    extra = cascade.upstream_extra(cfg, bool(req.stream), chat) if cfg else {}
    body = await _complete(rt, call, req, held, extra)
    escalate = await _cascade(rt, call, req, body, admission)  # the small answer failed
    cascade.without_extra(body, extra, call.body)  # what the check asked for, hidden
    if escalate is not None:
        return await _escalate(rt, call, req, admission, lookup, *escalate)
    if not native.speaks(rt, call, call.model or ""):
        await rt.cache.store(lookup, call, body)  # complete chat answers only
    record(call)
    rt.learning.served(call)  # a route with `learning:`: memo, maybe paired sampling (background)
    if req.stream:  # a checked small answer, replayed as a stream
        return StreamReply(_replay(rt, call, req, body), call.headers())
    return Reply(body, call.headers())


async def _complete(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, held: Reservation,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Call the decision's candidates; settle usage, cost and the budget hold; the answer.
    `extra`: fields the cascade's check adds to the upstream request (None values removed)."""
    assert call.decision is not None

    def send(m: str) -> Awaitable[Completion]:
        endpoint, body = _request(rt, call, m)
        return rt.providers[m].complete(endpoint, cascade.merged(body, extra))

    with _released_on_failure(rt, held, call):
        model, completion = await rt.resilient.call(
            call.decision.candidates,
            send,
            call.attempts,
            call.request_id,
            call.trace,
        )
    call.model = model
    affinity.remember(rt, call)
    _settle(rt, call, completion, req)
    call.response = completion.body  # telemetry: finish reasons (and opt-in content)
    rt.budget.enforcer.settle_soon(call, held)
    completion.body["model"] = model
    if completion.usage is None and call.usage is not None and not native.speaks(rt, call, model):
        completion.body["usage"] = call.usage.as_openai()
    return completion.body


def _cascading(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest
) -> CascadeConfig | None:
    """The route's cascade when this request goes to a tier below the route's largest (streams
    only with `stream: check`; passed-through native answers are not checked)."""
    d = call.decision
    if d is None or d.route is None or not d.candidates:
        return None
    cfg = rt.settings.routes[d.route].cascade
    if cfg is None or (req.stream and cfg.stream != "check"):
        return None
    if native.speaks(rt, call, d.candidates[0]) or rt.router.escalation(d, "") is None:
        return None
    return cfg


async def _cascade(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, body: dict[str, Any],
    admission: Admission,
) -> tuple[str, Decision] | None:  # fmt: skip
    """(reason, large-tier decision) when the route cascades and the small answer fails its
    check; never when the team's budget says small only (the header says so)."""
    d = call.decision
    cfg = _cascading(rt, call, req)
    if cfg is None or d is None or call.model is None or rt.router.model(call.model).tier != d.tier:
        return None  # no cascade, or a fallback of another tier answered
    scorer = d.extra.get("scorer")  # the route's router score: `cascade.mix` reads it
    verdict = await cascade.check(body, cfg, _messages(call), d.score, scorer)
    if verdict.score is not None:  # the verifier ran: say what it found
        call.extra_headers["x-frugal-cascade"] = verdict.note
    if verdict.reason is None:
        return None
    view = admission.view
    if view is not None and (view.force_small or view.free_only):
        call.extra_headers["x-frugal-cascade"] = f"not escalated ({view.note}): {verdict.note}"
        return None
    up = rt.router.escalation(d, f"cascade: small answer {verdict.reason}")
    return None if up is None else (verdict.reason, up)


def _messages(call: Call) -> list[dict[str, Any]]:
    if call.endpoint is Endpoint.chat:
        return list(call.body.get("messages") or ())
    prompt = call.body.get("prompt")
    if not isinstance(prompt, str):
        prompt = " ".join(p for p in prompt or () if isinstance(p, str))
    return [{"role": "user", "content": prompt}]


async def _escalate(
    rt: Runtime, small: Call, req: ChatRequest | CompletionRequest, admission: Admission,
    lookup: Lookup, reason: str, decision: Decision,
) -> Reply | StreamReply:  # fmt: skip
    """Record the small call as it was (costed), then answer from the route's large tier
    (streamed, for a checked stream)."""
    small.outcome = f"cascade_escalated:{reason}"
    record(small)
    call = Call(
        small.request_id, small.principal, small.endpoint, small.body, small.api, decision=decision
    )
    call.trace = small.trace
    held = await rt.budget.enforcer.reserve(call, admission)
    if req.stream:
        reply = await _stream(rt, call, req, held, lookup)
        reply.headers["x-frugal-cascade"] = f"escalated from {small.model}: {reason}"
        reply.headers["x-frugal-cascade-small-cost-usd"] = pricing.usd(small.cost or Decimal(0))
        return reply
    body = await _complete(rt, call, req, held)
    record(call)
    rt.learning.escalated(small, call)  # an implicit label (gateway/learning)
    headers = call.headers()
    total = (small.cost or Decimal(0)) + (call.cost or Decimal(0))
    headers["x-frugal-cost-usd"] = pricing.usd(total)  # both calls: this request's whole cost
    headers["x-frugal-cascade"] = f"escalated from {small.model}: {reason}"
    return Reply(body, headers)


def _replay(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, body: dict[str, Any]
) -> AsyncIterator[bytes]:
    """A checked small answer as an SSE stream (the cache's replay of a complete answer)."""
    assert call.model is not None and call.usage is not None
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    entry = Entry(call.model, body, call.usage, time.time())
    extra = {"cost_usd": pricing.usd(call.cost or Decimal(0)), "cache": call.cache}
    return replay.stream(entry, call.request_id, call.model, include_usage, extra)


def _cached(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, lookup: Lookup
) -> Reply | StreamReply:
    """A hit: $0 against the budget; `cost` before `credit` is what the call would have cost."""
    assert lookup.entry is not None
    call.model = lookup.entry.model  # a coalesced answer may come from a fallback model
    charge(rt, call, lookup.entry.usage)
    rt.cache.credit(call)
    record(call)
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamReply(rt.cache.replay(call, lookup.entry, include_usage), call.headers())
    return Reply(lookup.entry.response(call.request_id, call.model), call.headers())


async def embed(rt: Runtime, call: Call, req: EmbeddingRequest) -> Reply:
    budget = rt.budget.enforcer
    admission = await budget.admit(call, lambda: prompt_tokens(call))
    call.decision = rt.router.pinned(req.model, kind="embedding")
    authorize(call, admission, rt.settings.models)
    held = await budget.reserve(call, admission)
    with _released_on_failure(rt, held):
        model, completion = await rt.resilient.call(
            call.decision.candidates,
            lambda m: rt.providers[m].embed(upstream_body(rt, call.body, m)),
            call.attempts,
            call.request_id,
            call.trace,
        )
    call.model = model
    usage = completion.usage or Usage(prompt_tokens(call), 0, estimated=True)
    if completion.usage is None:
        completion.body["usage"] = {"prompt_tokens": usage.prompt_tokens,
                                    "total_tokens": usage.prompt_tokens}  # fmt: skip
    call.usage = usage
    tier = pricing.served_tier(usage, call.body)
    call.cost = pricing.cost(usage, rt.router.model(model).price, tier)
    budget.settle_soon(call, held)
    completion.body["model"] = model
    record(call)
    return Reply(completion.body, call.headers())


async def _route(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, admission: Admission
) -> Decision:
    if not rt.router.is_route(req.model):
        return rt.router.pinned(req.model)
    budget = admission.view
    api = call.api.value if call.api is not None else "chat"
    prompt = admission.prompt_tokens  # 0 when no budget needed it: counted if a window may care
    if not prompt and rt.router.windowed(req.model):
        prompt = prompt_tokens(call)
    native_only = call.native_only is not None  # the bridge cannot translate it
    needs = capabilities.needs(call.body, prompt, api, native_only)  # what a model must take
    if isinstance(req, ChatRequest):
        messages = call.body["messages"]
        call.decision = await rt.router.decide(req.model, messages, bool(req.tools), budget, needs)
        await affinity.steer(rt, call)  # a conversation stays on its model (opt-in per route)
        return call.decision
    text = (
        req.prompt
        if isinstance(req.prompt, str)
        else " ".join(p for p in req.prompt if isinstance(p, str))
    )
    messages = [{"role": "user", "content": text}]
    return await rt.router.decide(req.model, messages, False, budget, needs)


@contextmanager
def _released_on_failure(
    rt: Runtime, held: Reservation, call: Call | None = None
) -> Iterator[None]:
    """No upstream answer (error, timeout, cancelled): give the budget hold back; unless the
    upstream may have processed, and billed, the request (an error after it was sent, e.g. a
    read timeout mid-generation): then the team is charged for it (`_charge_failed`)."""
    try:
        yield
    except UpstreamError as e:
        if call is not None and e.maybe_processed and e.model in rt.settings.models:
            _charge_failed(rt, call, e.model)
            rt.budget.enforcer.settle_soon(call, held)
        else:
            rt.budget.enforcer.later(rt.budget.enforcer.release(held))
        raise
    except BaseException:
        rt.budget.enforcer.later(rt.budget.enforcer.release(held))
        raise


def _charge_failed(rt: Runtime, call: Call, model: str) -> None:
    """An attempt the upstream may have billed without answering: charge what it can bill at
    most (the prompt and the output cap that was sent, the request's hold), as estimated
    usage, and say so (`x-frugal-charged-failure`; the log line's outcome names the error)."""
    cfg = rt.router.model(model)
    sent = with_output_cap(call.body, cfg)
    cap = int(sent.get(cap_field(cfg.model, chat="messages" in sent), 0) or 0)
    call.model = model
    charge(rt, call, Usage(prompt_tokens(call), cap * choices(call.body), estimated=True))
    call.extra_headers["x-frugal-charged-failure"] = "upstream may have billed"


def _request(rt: Runtime, call: Call, model: str) -> tuple[Endpoint, dict[str, Any]]:
    """What `model` is sent: the client's own request where its upstream speaks the client's
    API (passed through), else the chat request."""
    if call.api is not None and native.speaks(rt, call, model):
        return call.api, native.request(rt, call, model)
    return call.endpoint, upstream_body(rt, call.body, model)


def upstream_body(rt: Runtime, body: dict[str, Any], model: str) -> dict[str, Any]:
    cfg = rt.router.model(model)
    out = with_output_cap(body, cfg)  # the output cap the budget hold covers, always sent
    out["model"] = cfg.model
    if out.get("stream"):
        # Always ask for usage, to account for it; the relay hides it unless the client asked.
        opts = dict(out.get("stream_options") or {})
        opts["include_usage"] = True
        out["stream_options"] = opts
    return out


def charge(rt: Runtime, call: Call, usage: Usage) -> None:
    """Set the call's usage, its cost, and what it would have cost on the route's large model:
    the same token classes (cached, cache writes, reasoning) at the large model's prices
    (the savings assumption, README "Savings")."""
    assert call.model is not None
    call.usage = usage
    tier = pricing.served_tier(usage, call.body)
    price = rt.router.model(call.model).price
    call.cost_classes = pricing.breakdown(usage, price, tier)
    call.cost = pricing.total(call.cost_classes)
    baseline = rt.router.baseline_model(call.decision.route if call.decision else None)
    base_price = rt.router.model(baseline).price if baseline else price
    # the same price (a pinned model, or the large model itself): the same cost, not priced again
    call.baseline_cost = call.cost if base_price is price else pricing.cost(usage, base_price, tier)


def prompt_tokens(call: Call) -> int:
    """Input tokens (for holds and TPM): the text, plus tools, schemas, images, token ids."""
    extra = prompt_extra(call.body)
    if call.endpoint is Endpoint.chat:
        return tokens.count_messages(call.body["messages"]) + extra
    if call.endpoint is Endpoint.embeddings:
        return tokens.count_prompt(call.body.get("input")) + extra
    return tokens.count_prompt(call.body.get("prompt")) + extra


def _settle(rt: Runtime, call: Call, c: Completion, req: ChatRequest | CompletionRequest) -> None:
    usage = c.usage
    if usage is None:
        texts = []
        for choice in c.body.get("choices") or ():
            if isinstance(choice, dict):
                msg = choice.get("message") or {}
                texts.append(text_of(msg.get("content")) if isinstance(msg, dict) else "")
                texts.append(str(choice.get("text") or ""))
        usage = Usage(prompt_tokens(call), tokens.count_text("".join(texts)), estimated=True)
    assert call.model is not None
    charge(rt, call, usage)


async def _stream(
    rt: Runtime, call: Call, req: ChatRequest | CompletionRequest, held: Reservation,
    lookup: Lookup,
) -> StreamReply:  # fmt: skip
    assert call.decision is not None
    budget = rt.budget.enforcer
    with _released_on_failure(rt, held, call):
        model, first, chunks = await rt.resilient.open_stream(
            call.decision.candidates,
            lambda m: rt.providers[m].stream(*_request(rt, call, m)),
            call.attempts,
            call.request_id,
            call.trace,
        )
    call.model = model
    affinity.remember(rt, call)
    chunks = rt.cache.capture(lookup, call, first, chunks)  # stored once the stream is complete
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def finish(usage: Usage) -> None:  # exactly once, also when the client disconnects
        charge(rt, call, usage)
        budget.later(budget.settle(call, held))
        record(call)
        rt.learning.served(call)  # label loop (gateway/learning), off the request path

    if native.speaks(rt, call, model):  # the upstream's own events, as they come
        events = native.relay(call, first, chunks, lambda: prompt_tokens(call), finish)
        return StreamReply(events, call.headers(streaming=True))
    chunks = rt.cache.capture(lookup, call, first, chunks)  # stored once the stream is complete
    return StreamReply(
        relay(call, first, chunks, include_usage, lambda: prompt_tokens(call), finish),
        call.headers(streaming=True),
    )
