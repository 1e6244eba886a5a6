"""The exact key: every answer-changing field is in it, nothing else is, and identical
requests get identical keys whatever the JSON's key order or whitespace."""

from typing import Any

import orjson
import pytest

from gateway.cache.key import EXCLUDED, KEY_FIELDS, exact_key
from gateway.schemas import ChatRequest, CompletionRequest, EmbeddingRequest

MODEL = ["small-a", "openai", "fake-small", "http://127.0.0.1:1/v1"]
BASE: dict[str, Any] = {
    "model": "auto",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "temperature": 0,
}


def key(body: dict[str, Any], model: list[str] = MODEL, scope: str = "team:a") -> str:
    return exact_key(body, model, scope)


@pytest.mark.parametrize("model", [ChatRequest, CompletionRequest])
def test_every_request_field_is_keyed_or_explicitly_excluded(model: type[Any]) -> None:
    unlisted = set(model.model_fields) - KEY_FIELDS - set(EXCLUDED)
    assert not unlisted, (
        f"{model.__name__} has fields {sorted(unlisted)} that are neither in the cache key "
        "(gateway/cache/key.py KEY_FIELDS) nor in its EXCLUDED list: decide which, and why"
    )
    assert not KEY_FIELDS & set(EXCLUDED)


def test_embeddings_are_not_generation_requests() -> None:
    # Embedding requests are never cached by this stage; listed so that a change is noticed.
    assert set(EmbeddingRequest.model_fields) == {
        "model", "input", "encoding_format", "dimensions", "user",
    }  # fmt: skip


def test_key_order_and_whitespace_do_not_matter() -> None:
    a = orjson.loads(
        b'{"model":"auto","messages":[{"role":"system","content":"Be brief."},'
        b'{"role":"user","content":"Hi"}],"temperature":0}'
    )
    b = orjson.loads(
        b'{ "temperature" : 0.0,\n  "messages" : [ {"content": "Be brief.", "role": "system"},'
        b' {"content":"Hi","role":"user"} ],\n "model": "auto", "seed": null }'
    )
    assert key(a) == key(b)
    assert key(a).startswith("frugal:cache:v1:team:a:")
    assert key(a) == key(dict(reversed(list(a.items()))))


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi", "name": "bob"}]},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"tool_choice": "none"}, {"response_format": {"type": "json_object"}},
        {"temperature": 0.2}, {"top_p": 0.5}, {"seed": 1}, {"max_tokens": 5},
        {"max_completion_tokens": 5}, {"stop": ["x"]}, {"n": 2}, {"logprobs": True},
        {"top_logprobs": 2}, {"logit_bias": {"50256": -100}}, {"presence_penalty": 1},
        {"frequency_penalty": 1}, {"top_k": 5}, {"num_ctx": 8192}, {"vendor_option": {"a": 1}},
    ],
)  # fmt: skip
def test_each_answer_changing_field_changes_the_key(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) != key(BASE)


def test_completion_fields_change_the_key() -> None:
    base = {"model": "m", "prompt": "Once", "temperature": 0}
    assert key({**base, "prompt": "Twice"}) != key(base)
    assert key({**base, "echo": True}) != key(base)
    assert key({**base, "logprobs": 2}) != key(base)


def test_routed_model_and_scope_change_the_key() -> None:
    assert key(BASE, model=["large-a", "openai", "fake-large", "u"]) != key(BASE)
    # Same gateway name, different upstream model behind it: a different key.
    assert key(BASE, model=[*MODEL[:2], "fake-small-v2", MODEL[3]]) != key(BASE)
    assert key(BASE, scope="team:b") != key(BASE)
    assert key(BASE, scope="shared") != key(BASE)


@pytest.mark.parametrize(
    "change",
    [{"model": "small-a"}, {"stream": True}, {"stream_options": {"include_usage": True}},
     {"user": "end-user-42"}],
)  # fmt: skip
def test_excluded_fields_do_not_change_the_key(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) == key(BASE)
