"""Server-sent events in the OpenAI format."""

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"
