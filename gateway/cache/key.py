"""The exact cache key: a versioned SHA-256 of a canonical serialisation of every request
field that can change the answer.

Every field of the request models is either in `KEY_FIELDS` or in `EXCLUDED` (a test checks
this, so a new field cannot silently be left out of the key). Fields the schema does not
declare (provider-specific extras such as `top_k` or `num_ctx`) are always part of the key.
Canonical form: the parsed JSON (so whitespace never matters), keys sorted, top-level nulls
dropped (null means "not given"), integral floats written as integers (`0.0` == `0`)."""

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

VERSION = "v1"
PREFIX = f"frugal:cache:{VERSION}:"

# Fields that change the answer (besides the routed model and the scope, added separately).
KEY_FIELDS = frozenset(
    {
        "messages", "prompt", "tools", "tool_choice", "response_format", "temperature", "top_p",
        "seed", "max_tokens", "max_completion_tokens", "stop", "n", "logprobs", "top_logprobs",
        "logit_bias", "presence_penalty", "frequency_penalty", "echo",
    }
)  # fmt: skip

# Fields that do not change the answer, and why.
EXCLUDED = {
    "model": "replaced by the model actually routed to (and its upstream id)",
    "stream": "streamed and non-streamed requests share entries",
    "stream_options": "only changes how a stream is framed (the usage chunk), not the answer",
    "user": "an end-user id for abuse tracking; it does not change the answer",
}


def canonical(value: Any) -> Any:
    """Integral floats become ints, recursively (so 0.0 and 0 give the same key)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def key_material(body: Mapping[str, Any], model_identity: list[str], scope: str) -> dict[str, Any]:
    """What the key hashes: every non-excluded, non-null field, plus model and scope."""
    fields = {k: canonical(v) for k, v in body.items() if k not in EXCLUDED and v is not None}
    return {"fields": fields, "model": model_identity, "scope": scope, "v": VERSION}


def digest(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(body: Mapping[str, Any], model_identity: list[str], scope: str) -> str:
    return f"{PREFIX}{scope}:{digest(key_material(body, model_identity, scope))}"


def scope_pattern(scope: str) -> str:
    """A glob matching every exact entry of one scope (scopes hold no `:` nor glob chars)."""
    return f"{PREFIX}{scope}:*"
