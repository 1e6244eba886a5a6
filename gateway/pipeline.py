"""The request path, in order, in one place. Handlers parse and authenticate, then call
`generate` or `embed` here.

    1 parse + validate  (app)        5 call the provider: retries, timeouts, fallback
    2 authenticate      (app)        6 usage: reported, or estimated with tiktoken
    3 route: pinned model or scorer  7 cost = usage x price (Decimal)
    4 upstream body (model replaced) 8 answer with x-frugal-* headers; log the request
"""

from dataclasses import dataclass
from typing import Any

from gateway import pricing, tokens
from gateway.call import Call
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
    call.decision = await _route(rt, call, req)
    if req.stream:
        return await _stream(rt, call, req)
    model, completion = await rt.resilient.call(
        call.decision.candidates,
        lambda m: rt.providers[m].complete(call.endpoint, upstream_body(rt, call.body, m)),
        call.attempts,
        call.request_id,
    )
    call.model = model
    _settle(rt, call, completion, req)
    completion.body["model"] = model
    if completion.usage is None and call.usage is not None:
        completion.body["usage"] = call.usage.as_openai()
    record(call)
    return Reply(completion.body, call.headers())


async def embed(rt: Runtime, call: Call, req: EmbeddingRequest) -> Reply:
    call.decision = rt.router.pinned(req.model, kind="embedding")
    model, completion = await rt.resilient.call(
        call.decision.candidates,
        lambda m: rt.providers[m].embed(upstream_body(rt, call.body, m)),
        call.attempts,
        call.request_id,
    )
    call.model = model
    usage = completion.usage or Usage(tokens.count_prompt(req.input), 0, estimated=True)
    if completion.usage is None:
        completion.body["usage"] = {"prompt_tokens": usage.prompt_tokens,
                                    "total_tokens": usage.prompt_tokens}  # fmt: skip
    call.usage = usage
    call.cost = pricing.cost(usage, rt.router.model(model).price)
    completion.body["model"] = model
    record(call)
    return Reply(completion.body, call.headers())


async def _route(rt: Runtime, call: Call, req: ChatRequest | CompletionRequest) -> Decision:
    if not rt.router.is_route(req.model):
        return rt.router.pinned(req.model)
    if isinstance(req, ChatRequest):
        return await rt.router.decide(req.model, call.body["messages"], bool(req.tools))
    prompt = (
        req.prompt
        if isinstance(req.prompt, str)
        else " ".join(p for p in req.prompt if isinstance(p, str))
    )
    return await rt.router.decide(req.model, [{"role": "user", "content": prompt}], False)


def upstream_body(rt: Runtime, body: dict[str, Any], model: str) -> dict[str, Any]:
    out = dict(body)
    out["model"] = rt.router.model(model).model
    if out.get("stream"):
        # Always ask for usage, to account for it; the relay hides it unless the client asked.
        opts = dict(out.get("stream_options") or {})
        opts["include_usage"] = True
        out["stream_options"] = opts
    return out


def charge(rt: Runtime, call: Call, usage: Usage) -> None:
    """Set the call's usage, its cost, and what it would have cost on the route's large model."""
    assert call.model is not None
    call.usage = usage
    call.cost = pricing.cost(usage, rt.router.model(call.model).price)
    baseline = rt.router.baseline_model(call.decision.route if call.decision else None)
    price = rt.router.model(baseline).price if baseline else rt.router.model(call.model).price
    call.baseline_cost = pricing.cost(usage, price)


def prompt_tokens(call: Call) -> int:
    if call.endpoint is Endpoint.chat:
        return tokens.count_messages(call.body["messages"])
    return tokens.count_prompt(call.body.get("prompt"))


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


async def _stream(rt: Runtime, call: Call, req: ChatRequest | CompletionRequest) -> StreamReply:
    assert call.decision is not None
    model, first, chunks = await rt.resilient.open_stream(
        call.decision.candidates,
        lambda m: rt.providers[m].stream(call.endpoint, upstream_body(rt, call.body, m)),
        call.attempts,
        call.request_id,
    )
    call.model = model
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def finish(usage: Usage) -> None:
        charge(rt, call, usage)
        record(call)

    return StreamReply(
        relay(call, first, chunks, include_usage, lambda: prompt_tokens(call), finish),
        call.headers(streaming=True),
    )
