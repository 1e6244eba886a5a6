"""What the semantic cache compares: the last user turn's text, and the partition of every
other answer-changing input (team scope, routed model, system prompt, earlier turns, every
parameter). Only requests in the same partition can answer each other."""

from collections.abc import Mapping
from typing import Any

from gateway.cache.key import digest, key_material

MAX_TURN_CHARS = 2000  # longer turns are documents, not questions: exact cache only


def last_user_turn(body: Mapping[str, Any]) -> str | None:
    """The text of the final message when it is a user turn made only of text, else None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            return None  # images, audio, files: never matched by meaning
        content = "\n".join(str(p.get("text") or "") for p in content)
    if not isinstance(content, str) or not content.strip() or len(content) > MAX_TURN_CHARS:
        return None
    return content


def partition(body: Mapping[str, Any], model_identity: list[str], scope: str) -> str:
    """A hash of the request with its last turn's content blanked (same key material rules as
    the exact key, so a new field is in the partition as soon as it is in the key)."""
    messages = list(body["messages"])
    last = {k: v for k, v in messages[-1].items() if k != "content"}
    blanked = {**body, "messages": [*messages[:-1], last]}
    return digest({"semantic": key_material(blanked, model_identity, scope)})
