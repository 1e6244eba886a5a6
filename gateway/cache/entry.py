"""What a cache entry holds, and which answers may become one.

An entry is the upstream's completion body (no request headers, no keys: nothing the client or
the gateway authenticated with), the gateway model that produced it, and its usage. Only
complete, successful answers qualify: every choice ended with a natural finish reason."""

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.usage import Usage

# `length` is cacheable: max_tokens is part of the key, so the same request is cut the same way.
# `content_filter` is not: filters change, and a filtered answer is not one worth replaying.
FINISHED = frozenset({"stop", "length", "tool_calls", "function_call", "eos"})
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Entry:
    model: str
    body: dict[str, Any]
    usage: Usage
    stored_at: float

    def encode(self) -> bytes:
        u = self.usage
        return orjson.dumps(
            {"f": FORMAT, "model": self.model, "body": self.body, "stored_at": self.stored_at,
             "usage": [u.prompt_tokens, u.completion_tokens, u.estimated],
             # the token classes, so a hit's "would have cost" is priced like the call was
             "classes": [u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens,
                         u.reasoning_tokens]}
        )  # fmt: skip

    def response(self, request_id: str, model: str) -> dict[str, Any]:
        """The stored body as a fresh response to this request."""
        body = dict(self.body)
        kind = "chatcmpl" if body.get("object") == "chat.completion" else "cmpl"
        body["id"] = f"{kind}-{request_id}"
        body["created"] = int(time.time())
        body["model"] = model
        body["usage"] = self.usage.as_openai()
        return body


def decode(raw: bytes) -> Entry | None:
    """The entry, or None for anything unreadable or of another format (treated as a miss)."""
    try:
        d = orjson.loads(raw)
        if not isinstance(d, dict) or d.get("f") != FORMAT:
            return None
        p, c, est = d["usage"]
        cached, w5, w1h, reasoning = d.get("classes") or (0, 0, 0, 0)  # older entries: none
        usage = Usage(int(p), int(c), bool(est), cached_tokens=int(cached),
                      cache_write_tokens=int(w5), cache_write_1h_tokens=int(w1h),
                      reasoning_tokens=int(reasoning))  # fmt: skip
        return Entry(str(d["model"]), dict(d["body"]), usage, float(d["stored_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def complete(body: dict[str, Any]) -> bool:
    """A successful answer whose every choice finished naturally."""
    if "error" in body:
        return False
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") in FINISHED for c in choices)
