"""Relay an upstream stream to the client as SSE, and settle it whatever happens.

Usage comes from the last chunk that reports one (upstreams may report on every chunk);
otherwise it is estimated from the text relayed so far. It is settled once, when the stream
ends or in `finally`, so a client that disconnects mid-stream is charged for what was
generated. An upstream that fails after the first chunk
ends the client's stream with an error event (never a hang, never a retry)."""

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway import sse, tokens
from gateway.call import Call
from gateway.errors import UpstreamError
from gateway.pricing import usd
from gateway.usage import Usage, usage_from

log = logging.getLogger("frugal.request")


@dataclass(slots=True)
class StreamReply:
    chunks: AsyncIterator[bytes]
    headers: dict[str, str]


def _text(chunk: dict[str, Any]) -> str:
    parts: list[str] = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    parts.append(fn["arguments"])
        elif isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


async def relay(
    call: Call,
    first: dict[str, Any],
    rest: AsyncIterator[dict[str, Any]],
    include_usage: bool,
    count_prompt: Callable[[], int],
    finish: Callable[[Usage], None],
) -> AsyncIterator[bytes]:
    """`finish(usage)` sets the call's usage and cost; it is called exactly once, when the
    stream has ended (or in `finally`), with the last usage the upstream reported. Upstreams
    may report usage on every chunk (vLLM's `continuous_usage_stats`): each report is the
    total so far, so only the last one counts."""
    produced: list[str] = []
    reasons: list[str] = []
    last: Usage | None = None  # the latest usage the upstream reported
    held: dict[str, Any] | None = None  # a usage-only chunk, sent once we know if it is final
    settled = False
    completed = False

    def done() -> None:
        nonlocal settled
        if settled:
            return
        settled = True
        call.response = _summary(produced, reasons)  # for telemetry (finish reasons, content)
        if last is not None:
            finish(last)
        else:  # charge the input plus what was generated
            finish(Usage(count_prompt(), tokens.count_text("".join(produced)), estimated=True))

    try:
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            reported = usage_from(chunk)
            produced.append(_text(chunk))
            reasons += _finish_reasons(chunk)
            chunk["model"] = call.model
            if held is not None:  # not the last usage after all: send it as it came
                yield sse.event(held)
                held = None
            if reported is not None:
                last = reported
                if not chunk.get("choices"):
                    held = chunk if include_usage else None
                    chunk = await anext(rest, None)
                    continue
                if not include_usage:
                    chunk.pop("usage", None)
            if call.first_chunk_ms is None:
                call.first_chunk_ms = call.elapsed_ms()  # time to first chunk
            yield sse.event(chunk)
            chunk = await anext(rest, None)
        done()
        if include_usage and call.usage is not None:
            final = held if held is not None else _usage_chunk(call, call.usage)
            final["x_frugal"] = _frugal(call)
            held = None
            yield sse.event(final)
        completed = True
        yield sse.DONE
    except UpstreamError as e:
        call.outcome = f"upstream_error_mid_stream:{type(e).__name__}"
        log.warning("stream failed request_id=%s model=%s: %s", call.request_id, call.model, e)
        yield sse.event({"error": {"message": e.message, "type": e.type, "param": None,
                                   "code": e.code}})  # fmt: skip
    finally:
        if not completed and call.outcome == "ok":
            call.outcome = "client_disconnected"
        done()  # a no-op when the stream already settled
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


def _finish_reasons(chunk: dict[str, Any]) -> list[str]:
    return [str(c["finish_reason"]) for c in chunk.get("choices") or ()
            if isinstance(c, dict) and c.get("finish_reason")]  # fmt: skip


def _summary(produced: list[str], reasons: list[str]) -> dict[str, Any]:
    """A streamed answer in the shape of a whole one (one choice's text and finish reasons)."""
    text = "".join(produced)
    finished: list[str | None] = [*reasons] or [None]  # None: the stream did not finish
    choices = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": r}
               for r in finished]  # fmt: skip
    return {"choices": choices}


def _frugal(call: Call) -> dict[str, Any]:
    out: dict[str, Any] = {"cost_usd": usd(call.cost or Decimal(0))}
    if call.usage is not None and call.usage.estimated:
        out["estimated_usage"] = True
    return out


def _usage_chunk(call: Call, usage: Usage) -> dict[str, Any]:
    """A final usage chunk where the upstream sent none of its own (estimated, or reported only
    alongside choices)."""
    return {
        "id": f"chatcmpl-{call.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model,
        "choices": [],
        "usage": usage.as_openai(),
    }
