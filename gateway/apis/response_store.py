"""Stored responses (`store: true`, the Responses API's default): the response object and the
conversation so far as chat messages, so that `previous_response_id` continues it on any
replica sharing the store (Redis), and `GET`/`DELETE /v1/responses/{id}` find it.

Each entry is keyed by the team, so one team can never read, continue or delete another's
response (it is simply not found), and expires after `TTL_S` (OpenAI keeps them 30 days)."""

import logging
from typing import Any

import orjson

from gateway.errors import InvalidRequest, Unavailable
from gateway.store import Store

log = logging.getLogger("frugal")
TTL_S = 30 * 24 * 3600
PREFIX = "frugal:responses:v1:"


def key(team: str, response_id: str) -> str:
    return f"{PREFIX}{{{team}}}:{response_id}"


async def save(
    store: Store, team: str, response: dict[str, Any], conversation: list[dict[str, Any]],
    native: str | None = None,
) -> None:  # fmt: skip
    """Keep a finished response; a store that fails is logged, never fails the answer. A
    response passed through to a model whose upstream keeps the state (`native`: its name)
    is kept without a conversation: continuing it stays on that model."""
    entry: dict[str, Any] = {"response": response, "conversation": conversation}
    if native is not None:
        entry["native"] = native
    raw = orjson.dumps(entry)
    try:
        await store.set(key(team, response["id"]), raw, TTL_S)
    except (OSError, TimeoutError) as e:
        log.warning("response %s not stored (%s: %s)", response["id"], type(e).__name__, e)


async def load(store: Store, team: str, response_id: str) -> dict[str, Any] | None:
    try:
        raw = await store.get(key(team, response_id))
    except (OSError, TimeoutError) as e:
        raise Unavailable(f"The response store is unavailable ({type(e).__name__}).") from None
    if raw is None:
        return None
    entry: dict[str, Any] = orjson.loads(raw)
    return entry


async def previous(store: Store, team: str, response_id: str) -> dict[str, Any]:
    """The stored entry a `previous_response_id` continues: its `conversation` (chat messages,
    without its instructions), and `native`, the model holding the state upstream, if any."""
    entry = await load(store, team, response_id)
    if entry is None:
        raise InvalidRequest(f"Previous response with id {response_id!r} not found.",
                             param="previous_response_id",
                             code="previous_response_not_found")  # fmt: skip
    return entry


async def conversation(store: Store, team: str, response_id: str) -> list[dict[str, Any]]:
    """The chat messages a `previous_response_id` continues (without its instructions)."""
    messages: list[dict[str, Any]] = (await previous(store, team, response_id))["conversation"]
    return messages


async def delete(store: Store, team: str, response_id: str) -> bool:
    try:
        return await store.delete(key(team, response_id)) > 0
    except (OSError, TimeoutError) as e:
        raise Unavailable(f"The response store is unavailable ({type(e).__name__}).") from None
