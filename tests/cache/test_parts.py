"""The cache's parts on their own: policy precedence, request controls, stream reassembly and
replay, the false-hit guard's rules."""

from typing import Any

import pytest

from gateway.cache.assemble import Assembler
from gateway.cache.controls import directives
from gateway.cache.entry import Entry, complete
from gateway.cache.guard import reason_to_reject
from gateway.cache.policy import SHARED_SCOPE, resolve, team_scope
from gateway.cache.replay import chunks, pieces
from gateway.cache.settings import CacheSettings
from gateway.usage import Usage


def test_policy_precedence_global_route_team() -> None:
    cfg = CacheSettings.model_validate({
        "ttl_s": 100, "semantic": {"enabled": True},
        "routes": {"auto": {"ttl_s": 50, "semantic": True, "shared_scope": True}},
        "teams": {"legal": {"enabled": False}, "ops": {"ttl_s": 10, "shared_scope": False}},
    })  # fmt: skip
    assert resolve(cfg, "x", "small-a").ttl_s == 100
    p = resolve(cfg, "x", "auto")
    assert (p.ttl_s, p.semantic, p.scope) == (50, True, SHARED_SCOPE)
    assert not resolve(cfg, "legal", "auto").enabled
    p = resolve(cfg, "ops", "auto")
    assert (p.ttl_s, p.scope, p.semantic) == (10, team_scope("ops"), True)
    # Semantic opt-in means nothing while the backend is off.
    off = cfg.model_copy(update={"semantic": cfg.semantic.model_copy(update={"enabled": False})})
    assert not resolve(off, "x", "auto").semantic


def test_team_scopes_cannot_collide_or_glob() -> None:
    assert team_scope("a:b") != team_scope("a") and ":" not in team_scope("a:b*?[]")[5:]
    assert team_scope("shared") != SHARED_SCOPE


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, (True, True)), ({"cache-control": "no-cache"}, (False, True)),
     ({"cache-control": "max-age=0, no-store"}, (False, False)),
     ({"x-frugal-cache": "BYPASS"}, (False, False)), ({"cache-control": "private"}, (True, True))],
)  # fmt: skip
def test_request_controls(headers: dict[str, str], expected: tuple[bool, bool]) -> None:
    assert directives(headers) == expected


def test_pieces_rejoin_exactly() -> None:
    for text in ("", "one", "  lead and trail  ", "a b c d e f g h i j\n\nk", "x\ty"):
        assert "".join(pieces(text)) == text


def test_assembled_stream_replays_to_the_same_answer() -> None:
    asm = Assembler(chat=True)
    base: dict[str, Any] = {"id": "c1", "created": 1, "object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": " world"},
        {"tool_calls": [{"index": 0, "id": "t1", "type": "function",
                         "function": {"name": "f", "arguments": "{\"a\""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
    ]  # fmt: skip
    for d in deltas:
        asm.feed({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
    assert not complete(asm.body())  # no finish_reason yet: a truncated stream
    asm.feed({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    asm.feed({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    body = asm.body()
    assert complete(body) and asm.usage == Usage(3, 4)
    msg = body["choices"][0]["message"]
    assert msg["content"] == "Hello world"
    assert msg["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    out = list(chunks(Entry("m", body, Usage(3, 4), 0), "r", "m", True, {}))
    again = Assembler(chat=True)
    for c in out:
        again.feed(c)
    assert again.body()["choices"] == body["choices"] and again.usage == Usage(3, 4)


def test_errors_and_filtered_answers_are_not_complete() -> None:
    assert not complete({"error": {"message": "x"}})
    assert not complete({"choices": []})
    assert not complete({"choices": [{"finish_reason": "content_filter"}]})
    assert complete({"choices": [{"finish_reason": "length"}]})


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [("Is it safe?", "Isn't it safe?", "negation differs"),
     ("What is 3 plus 4?", "What is three plus four?", None),
     ("What is 3 plus 4?", "What is 4 plus 3?", "numbers differ"),
     ("Flights from Paris to Rome", "Flights from Rome to Paris", "names differ"),
     ("Convert 5 kg to pounds", "Convert 5 pounds to kg", "units differ"),
     ("How do I upload a file?", "How do I download a file?", "opposite words"),
     ("How do I parse json in python?", "How do I parse json in ruby?",
      "one content word swapped"),
     ("How do I parse JSON in Python?", "How can I parse JSON in Python?", None)],
)  # fmt: skip
def test_guard_rules(a: str, b: str, why: str | None) -> None:
    assert reason_to_reject(a, b) == why
