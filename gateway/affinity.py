"""Conversation affinity (opt-in per route: `affinity: {window_s: 300}`).

Switching models mid-conversation throws away the provider's prompt cache, a 50-90% discount
on every later turn's cached input. A route with affinity keeps a conversation on the model
that answered its last turn while that cache is still warm: `window_s` after the last turn.

A conversation is named by a digest of (team, its system prompt, its first user message):
every turn of a chat conversation, and every request of a Responses `previous_response_id`
chain (whose stored history the bridge puts before the new input), starts with the same two
messages. The model is kept in the store (Redis when configured, so every replica agrees)
with a TTL of the window, refreshed by each answered turn. The remembered model is used only
when the route still has it, it is available and it can take the request (capabilities.py);
the reason header says when affinity decided. A store that fails is ignored: routing goes on
without affinity."""

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.router.heuristic import text_of

if TYPE_CHECKING:
    from gateway.call import Call
    from gateway.runtime import Runtime

log = logging.getLogger("frugal.route")
PREFIX = "frugal:affinity:v1:"
EXTRA = "affinity_key"  # where the decision keeps the conversation's key


def conversation_key(team: str, messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The store key naming a conversation; None when it has no user message."""
    system = next((m for m in messages if m.get("role") in ("system", "developer")), None)
    user = next((m for m in messages if m.get("role") == "user"), None)
    if user is None:
        return None
    h = hashlib.blake2b(digest_size=16)
    for part in (team, text_of(system.get("content")) if system else "", text_of(user["content"])):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return f"{PREFIX}{{{team}}}:{h.hexdigest()}"


async def steer(rt: "Runtime", call: "Call") -> None:
    """Put the conversation's model first in the call's decision, when the route has
    affinity and the conversation's window is open."""
    d = call.decision
    if d is None or d.route is None:
        return
    cfg = rt.settings.routes[d.route].affinity
    messages = call.body.get("messages")
    if cfg is None or not isinstance(messages, list):
        return
    key = conversation_key(call.principal.team, messages)
    if key is None:
        return
    d.extra[EXTRA] = key
    try:
        raw = await rt.store.get(key)
    except (OSError, TimeoutError) as e:
        log.warning("affinity lookup failed (%s); routing without it", type(e).__name__)
        return
    if raw is None:
        return
    model = raw.decode()
    why = rt.router.stick(d, model)
    if why is None:
        d.reason += f"; affinity: conversation stays on {model} (window {cfg.window_s:g} s)"
        d.category = "affinity"
    else:
        d.reason += f"; affinity: {model} not used ({why})"


def remember(rt: "Runtime", call: "Call") -> None:
    """After an answer: the conversation's model, for `window_s` more (in the background)."""
    d = call.decision
    key = d.extra.get(EXTRA) if d is not None else None
    if d is None or key is None or call.model is None or d.route is None:
        return
    cfg = rt.settings.routes[d.route].affinity
    if cfg is not None:
        rt.budget.enforcer.later(_write(rt, key, call.model, cfg.window_s))


async def _write(rt: "Runtime", key: str, model: str, ttl_s: float) -> None:
    try:
        await rt.store.set(key, model.encode(), ttl_s)
    except (OSError, TimeoutError) as e:
        log.warning("affinity not stored (%s)", type(e).__name__)
