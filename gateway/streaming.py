"""Relay an upstream stream to the client as SSE, and settle it whatever happens.

Usage comes from the upstream's final chunk where it sends one; otherwise it is estimated
from the text relayed so far. It is settled in `finally`, so a client that disconnects
mid-stream is charged for what was generated. An upstream that fails after the first chunk
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
    """`finish(usage)` sets the call's usage and cost; it is called exactly once."""
    produced: list[str] = []
    reasons: list[str] = []
    settled = False
    completed = False

    def done(usage: Usage) -> None:
        call.response = _summary(produced, reasons)  # for telemetry (finish reasons, content)
        finish(usage)

    try:
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            reported = usage_from(chunk)
            produced.append(_text(chunk))
            reasons += _finish_reasons(chunk)
            chunk["model"] = call.model
            if reported is not None:
                done(reported)
                settled = True
                if include_usage:
                    chunk["x_frugal"] = {"cost_usd": usd(call.cost or Decimal(0))}
                else:
                    chunk.pop("usage", None)
            if chunk.get("choices") or include_usage or reported is None:
                if call.first_chunk_ms is None:
                    call.first_chunk_ms = call.elapsed_ms()  # time to first chunk
                yield sse.event(chunk)
            chunk = await anext(rest, None)
        if not settled:
            done(Usage(count_prompt(), tokens.count_text("".join(produced)), estimated=True))
            settled = True
            if include_usage and call.usage is not None:
                yield sse.event(_usage_chunk(call, call.usage))
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
        if not settled:
            # Charge the input plus what was generated before the stream ended.
            done(Usage(count_prompt(), tokens.count_text("".join(produced)), estimated=True))
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


def _usage_chunk(call: Call, usage: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{call.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model,
        "choices": [],
        "usage": usage.as_openai(),
        "x_frugal": {"cost_usd": usd(call.cost or Decimal(0)), "estimated_usage": True},
    }
