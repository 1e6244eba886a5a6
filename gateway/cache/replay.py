"""Replay a cached answer as a proper SSE stream: for each choice a role chunk, content chunks
(a few words each), a finish_reason chunk; then the usage chunk if the client asked; [DONE]."""

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from gateway import sse
from gateway.cache.entry import Entry

# Leading blanks only at the start: `\s*\S+\s*` rescanned a run of blanks from each of its
# positions (quadratic on an all-blank answer); later matches start on a word anyway.
_PIECE = re.compile(r"(?:^\s*)?\S+\s*")
WORDS_PER_CHUNK = 4


def pieces(text: str) -> list[str]:
    """Split text into chunks of a few words; joined back they give the text exactly."""
    words = _PIECE.findall(text)
    if not words:
        return [text] if text else []
    out = ["".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
    out[-1] += text[len("".join(out)) :]  # trailing text the pattern did not take
    return out


def _chat_choice(choice: dict[str, Any]) -> Iterator[dict[str, Any]]:
    i = choice.get("index", 0)
    msg = choice.get("message") or {}
    yield {"index": i, "delta": {"role": msg.get("role", "assistant"), "content": ""},
           "finish_reason": None}  # fmt: skip
    content = msg.get("content")
    if isinstance(content, str):
        if choice.get("logprobs"):  # logprobs belong to the content: send them together
            yield {"index": i, "delta": {"content": content}, "logprobs": choice["logprobs"],
                   "finish_reason": None}  # fmt: skip
        else:
            for p in pieces(content):
                yield {"index": i, "delta": {"content": p}, "finish_reason": None}
    if msg.get("refusal"):
        yield {"index": i, "delta": {"refusal": msg["refusal"]}, "finish_reason": None}
    calls = msg.get("tool_calls")
    if calls:
        delta = [{"index": n, **c} for n, c in enumerate(calls)]
        yield {"index": i, "delta": {"tool_calls": delta}, "finish_reason": None}
    yield {"index": i, "delta": {}, "finish_reason": choice.get("finish_reason")}


def _text_choice(choice: dict[str, Any]) -> Iterator[dict[str, Any]]:
    i = choice.get("index", 0)
    text = str(choice.get("text") or "")
    if choice.get("logprobs"):
        yield {"index": i, "text": text, "logprobs": choice["logprobs"], "finish_reason": None}
    else:
        for p in pieces(text):
            yield {"index": i, "text": p, "finish_reason": None}
    yield {"index": i, "text": "", "finish_reason": choice.get("finish_reason")}


def chunks(entry: Entry, request_id: str, model: str, include_usage: bool,
           extra: dict[str, Any]) -> Iterator[dict[str, Any]]:  # fmt: skip
    chat = entry.body.get("object") == "chat.completion"
    head = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    for choice in entry.body.get("choices") or ():
        for c in _chat_choice(choice) if chat else _text_choice(choice):
            yield {**head, "choices": [c]}
    if include_usage:
        yield {**head, "choices": [], "usage": entry.usage.as_openai(), "x_frugal": extra}


async def stream(entry: Entry, request_id: str, model: str, include_usage: bool,
                 extra: dict[str, Any]) -> AsyncIterator[bytes]:  # fmt: skip
    for c in chunks(entry, request_id, model, include_usage, extra):
        yield sse.event(c)
    yield sse.DONE
