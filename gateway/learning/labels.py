"""Labels in the store, and their export in the router's user-log format.

One label per (team, source, request): `frugal:learn:label:<team>:<source>:<request id>`, a JSON
record with the conversation, both answers (where known), their costs and the verdict, expiring
after the route's `learning.retention_days`. Sources: `paired` (the other tier asked too, a
judge compared), `cascade` (the small answer failed the cascade's check), `feedback` (the
application's score of an answer). Feedback needs a memo of the answer it scores:
`frugal:learn:memo:<team>:<request id>` (kept `learning.feedback_window_hours`; a team's key
reaches only its own).

Export (`to_log_line`): the user-log format of gateway/router/README.md ("Your own logs"):
    paired:   acceptable.small = min(1, 2 x small_score), large = 1 (small_score: 1 = small better
              in both orders, 0.5 = even, 0 = large better in both); judge failures are skipped
    cascade:  small = false, large = true
    feedback: on a small-tier answer, small = the score, large = 1; on a large-tier answer it
              says nothing about the small tier: skipped
"""

import time
from collections.abc import Iterable
from typing import Any

import orjson

from gateway.store import Store

PREFIX = "frugal:learn:"
SOURCES = ("paired", "cascade", "feedback")


def label_key(team: str, source: str, request_id: str) -> str:
    return f"{PREFIX}label:{team}:{source}:{request_id}"


def memo_key(team: str, request_id: str) -> str:
    return f"{PREFIX}memo:{team}:{request_id}"


class Labels:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(self, label: dict[str, Any], retention_days: int) -> None:
        label.setdefault("created", round(time.time(), 3))
        key = label_key(label["team"], label["source"], label["request_id"])
        await self.store.set(key, orjson.dumps(label), retention_days * 86_400)

    async def memo(self, request_id: str, memo: dict[str, Any], ttl_s: float) -> None:
        key = memo_key(memo["team"], request_id)
        await self.store.set(key, orjson.dumps(memo), ttl_s)

    async def get_memo(self, team: str, request_id: str) -> dict[str, Any] | None:
        raw = await self.store.get(memo_key(team, request_id))
        return None if raw is None else dict(orjson.loads(raw))

    async def all(self, team: str | None = None, route: str | None = None) -> list[dict[str, Any]]:
        """Every stored label (oldest first), optionally of one team and/or route. Reads every
        key: an export path, never per request."""
        pattern = f"{PREFIX}label:{team or '*'}:*"
        out = []
        for key in await self.store.keys(pattern):
            raw = await self.store.get(key)
            if raw is None:
                continue  # expired in between
            label = orjson.loads(raw)
            if route is None or label.get("route") == route:
                out.append(label)
        out.sort(key=lambda lab: (lab.get("created", 0), lab.get("request_id", "")))
        return out


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def acceptable(label: dict[str, Any]) -> dict[str, float | bool] | None:
    """The label's `acceptable` pair for training, or None when it says nothing usable."""
    source = label.get("source")
    if source == "paired":
        score = _float(label.get("small_score"))
        return None if score is None else {"small": min(1.0, 2 * score), "large": 1.0}
    if source == "cascade":
        return {"small": False, "large": True}
    if source == "feedback":
        score = _float((label.get("feedback") or {}).get("score"))
        if score is None or (label.get("served") or {}).get("tier") != "small":
            return None
        return {"small": score, "large": 1.0}
    return None


def to_log_line(label: dict[str, Any]) -> dict[str, Any] | None:
    """One user-log line (gateway/router/README.md, "Your own logs") or None (skipped)."""
    pair = acceptable(label)
    if pair is None or not label.get("messages"):
        return None
    line: dict[str, Any] = {
        "id": f"{label['source']}:{label['request_id']}",
        "messages": label["messages"],
        "acceptable": pair,
        "tools": bool(label.get("tools")),
    }
    costs = {t: c for t in ("small", "large")
             if (c := _float((label.get("cost") or {}).get(t))) is not None}  # fmt: skip
    if len(costs) == 2:
        line["cost"] = costs
    return line


def export_lines(labels: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(user-log lines, number of labels skipped)."""
    lines, skipped = [], 0
    for label in labels:
        line = to_log_line(label)
        if line is None:
            skipped += 1
        else:
            lines.append(line)
    return lines, skipped
