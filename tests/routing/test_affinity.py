"""Conversation affinity (issue 16 item 5): on a route with `affinity`, a conversation stays on
the model it started on while the window is open (its key in Redis, TTL = the window), and the
reason header says so; a route without it routes each turn on its own."""

from typing import Any

import redis

from gateway import affinity
from tests.routing.conftest import Routed

TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
]


def _turns(gw: Routed, route: str, first: str) -> list[Any]:
    """Two turns of one conversation: the first needs tools (so only large-a can take it),
    the second does not (so the score alone would pick small-a)."""
    system = {"role": "system", "content": "You look things up."}
    user = {"role": "user", "content": first}
    one = gw.client.chat.completions.with_raw_response.create(
        model=route, messages=[system, user], tools=TOOLS
    )
    history = [system, user, {"role": "assistant", "content": "Found it."}]
    two = gw.client.chat.completions.with_raw_response.create(
        model=route, messages=[*history, {"role": "user", "content": "Thanks, and then?"}]
    )
    return [one.headers, two.headers]


def test_conversation_stays_on_its_model_within_the_window(gw: Routed) -> None:
    one, two = _turns(gw, "sticky", "Find the teal file.")
    assert one["x-frugal-model"] == "large-a"
    assert two["x-frugal-model"] == "large-a"
    assert two["x-frugal-tier"] == "large"
    assert "affinity: conversation stays on large-a (window 120 s)" in two["x-frugal-route-reason"]
    assert "affinity" not in one["x-frugal-route-reason"]  # nothing remembered yet

    key = affinity.conversation_key(
        "routing", [{"role": "system", "content": "You look things up."},
                    {"role": "user", "content": "Find the teal file."}],
    )  # fmt: skip
    assert key is not None
    r = redis.Redis.from_url(gw.redis_url)
    try:
        assert r.get(key) == b"large-a"
        assert 0 < r.ttl(key) <= 120
        r.delete(key)  # the window closed: the next turn is routed on its own
    finally:
        r.close()
    again = gw.client.chat.completions.with_raw_response.create(
        model="sticky",
        messages=[{"role": "system", "content": "You look things up."},
                  {"role": "user", "content": "Find the teal file."},
                  {"role": "assistant", "content": "Found it."},
                  {"role": "user", "content": "Thanks, and then?"}],
    )  # fmt: skip
    assert again.headers["x-frugal-model"] == "small-a"


def test_without_affinity_each_turn_is_routed_on_its_own(gw: Routed) -> None:
    one, two = _turns(gw, "auto", "Find the amber file.")
    assert (one["x-frugal-model"], two["x-frugal-model"]) == ("large-a", "small-a")
    assert "affinity" not in two["x-frugal-route-reason"]


def test_another_conversation_is_not_affected(gw: Routed) -> None:
    _turns(gw, "sticky", "Find the olive file.")
    other = gw.client.chat.completions.with_raw_response.create(
        model="sticky", messages=[{"role": "user", "content": "A new question"}]
    )
    assert other.headers["x-frugal-model"] == "small-a"


def test_affinity_never_overrides_what_a_model_cannot_take(gw: Routed) -> None:
    """A conversation started on small-a that now carries an image leaves it."""
    first = {"role": "user", "content": "Describe my photos."}
    gw.client.chat.completions.create(model="sticky", messages=[first])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    raw = gw.client.chat.completions.with_raw_response.create(
        model="sticky",
        messages=[first, {"role": "assistant", "content": "Send one."},
                  {"role": "user", "content": [{"type": "text", "text": "Here"}, image]}],
    )  # fmt: skip
    assert raw.headers["x-frugal-model"] == "large-a"
    assert "affinity: small-a not used (no vision" in raw.headers["x-frugal-route-reason"]


def test_a_previous_response_id_chain_stays_on_its_model(gw: Routed) -> None:
    """Responses bridged to chat: the stored history starts every later request of the chain
    with the same first messages, so the chain shares one conversation key."""
    first = gw.client.responses.with_raw_response.create(
        model="sticky", input="Find the coral file.", instructions="You look things up.",
        tools=[{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
    )  # fmt: skip
    assert first.headers["x-frugal-model"] == "large-a"  # tools: small-a cannot
    second = gw.client.responses.with_raw_response.create(
        model="sticky", input="Thanks, and then?", instructions="You look things up.",
        previous_response_id=first.parse().id,
    )  # fmt: skip
    assert second.headers["x-frugal-model"] == "large-a"
    assert "affinity: conversation stays on large-a" in second.headers["x-frugal-route-reason"]
