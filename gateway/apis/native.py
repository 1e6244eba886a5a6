"""Pass-through of a client API to a model whose upstream speaks it natively (`apis:`).

The translators still turn every request into chat (routing, token estimates, budget holds
and cache keys work on that), and keep the client's own body in `call.native`. When the
model the pipeline calls speaks the client's API, it is sent the client's body instead (its
model id and output cap replaced), and its answer goes back as it came: a whole response or
message, or its event stream relayed event by event, unknown event types included. Usage is
read from the native shapes (`response.completed`; `message_start` and `message_delta`) for
the cost and the budget; a stream cut short is charged its prompt and what was relayed."""

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from gateway import pipeline, tokens
from gateway.budget.estimate import cap_field, with_output_cap
from gateway.errors import InvalidRequest, UpstreamError
from gateway.providers.base import Endpoint
from gateway.schemas import ChatRequest
from gateway.streaming import StreamReply
from gateway.usage import Usage, usage_from

if TYPE_CHECKING:
    from gateway.call import Call
    from gateway.runtime import Runtime

_CAP = {Endpoint.responses: "max_output_tokens", Endpoint.messages: "max_tokens"}


def only(rt: "Runtime", call: "Call", model: str, refused: InvalidRequest) -> None:
    """A request the bridge refused: only models speaking the call's API natively may take it
    (routing filters the others); a pinned model that does not is the bridge's refusal."""
    cfg = rt.settings.models.get(model)
    if cfg is not None and call.endpoint.value not in rt.router.capabilities[model].apis:
        raise refused
    call.native_only = refused.message


async def generate(rt: "Runtime", call: "Call", req: ChatRequest) -> "pipeline.Reply | StreamReply":
    """The pipeline; a request only a native upstream can take, on a route none of whose
    models speaks the API, fails with the bridge's own reason."""
    try:
        return await pipeline.generate(rt, call, req)
    except InvalidRequest as e:
        if call.native_only is None or e.code != "no_capable_model":
            raise
        api = call.api.value if call.api is not None else "this API"
        raise InvalidRequest(
            f"{call.native_only} No model of route {req.model!r} speaks {api} natively.",
            param=e.param,
        ) from None


def speaks(rt: "Runtime", call: "Call", model: str) -> bool:
    """Whether `model` is sent the client's own request (its upstream speaks the API)."""
    if call.native is None or call.api is None:
        return False
    return call.api.value in rt.router.capabilities[model].apis


def request(rt: "Runtime", call: "Call", model: str) -> dict[str, Any]:
    """The client's body for `model`: its upstream model id, and the output cap the budget
    hold was worked out with (the chat translation's)."""
    assert call.native is not None and call.api is not None
    cfg = rt.router.model(model)
    sent = with_output_cap(call.body, cfg)
    body = {**call.native, "model": cfg.model}
    body[_CAP[call.api]] = sent[cap_field(cfg.model)]
    return body


def merge(last: Usage | None, new: Usage) -> Usage:
    """Anthropic reports input in `message_start` and output in `message_delta`: each side is
    the latest event's that reports it."""
    if last is None:
        return new
    out = last if not new.prompt_tokens else new
    if new.completion_tokens:
        out = replace(out, completion_tokens=new.completion_tokens,
                      reasoning_tokens=new.reasoning_tokens,
                      audio_output_tokens=new.audio_output_tokens)  # fmt: skip
    return replace(out, service_tier=new.service_tier or last.service_tier)


def _text(event: dict[str, Any]) -> str:
    delta = event.get("delta")
    if isinstance(delta, str):  # response.output_text.delta, function call arguments
        return delta
    if isinstance(delta, dict):  # content_block_delta: text_delta, input_json_delta, thinking
        for key in ("text", "partial_json", "thinking"):
            if isinstance(delta.get(key), str):
                return str(delta[key])
    return ""


def _sse(event: dict[str, Any]) -> bytes:
    kind = str(event.get("type") or "message")
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def relay(
    call: "Call",
    first: dict[str, Any],
    rest: AsyncIterator[dict[str, Any]],
    count_prompt: Callable[[], int],
    finish: Callable[[Usage], None],
) -> AsyncIterator[bytes]:
    """The upstream's events as SSE; `finish(usage)` exactly once, at the end or in
    `finally` (a client that leaves is charged for what was generated)."""
    last: Usage | None = None
    produced: list[str] = []
    settled = completed = False

    def done() -> None:
        nonlocal settled
        if settled:
            return
        settled = True
        if completed and last is not None:
            finish(last)
        else:  # cut short: the prompt (as reported, else counted) and what was relayed
            prompt = last.prompt_tokens if last is not None and last.prompt_tokens else None
            generated = tokens.count_text("".join(produced))
            finish(Usage(prompt or count_prompt(), generated, estimated=True))

    try:
        event: dict[str, Any] | None = first
        while event is not None:
            reported = usage_from(event)
            if reported is not None:
                last = merge(last, reported)
            produced.append(_text(event))
            if call.first_chunk_ms is None:
                call.first_chunk_ms = call.elapsed_ms()
            yield _sse(event)
            event = await anext(rest, None)
        completed = True
        done()
    except UpstreamError as e:
        call.outcome = f"upstream_error_mid_stream:{type(e).__name__}"
        error: dict[str, Any] = {
            "type": "error",
            "error": {"type": "api_error", "message": e.message},
        }
        if call.api is Endpoint.responses:
            error = {"type": "error", "code": e.code, "message": e.message, "param": None}
        yield _sse(error)
    finally:
        if not completed and call.outcome == "ok":
            call.outcome = "client_disconnected"
        done()
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
