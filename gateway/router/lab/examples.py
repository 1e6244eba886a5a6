"""Labelled conversations for training and evaluating the router, and the user log format.

An `Example` is one conversation with the quality (0..1, or any common scale per dataset) that
the small and the large tier reached on it, and optionally the USD cost of each call.

User logs (`frugal router train --logs FILE`, `frugal router eval --logs FILE`) are JSONL, one
conversation per line:

    {"messages": [{"role": "user", "content": "..."}, ...],   # OpenAI messages, required
     "acceptable": {"small": true, "large": true},             # required: bool or 0..1 score
     "tools": false,                                           # optional: tools were offered
     "cost": {"small": 0.0001, "large": 0.004},                # optional: USD of each call
     "group": "team-a/2025-06",                                # optional: CV fold grouping
     "id": "req-123"}                                          # optional

`acceptable.small` / `acceptable.large` say whether each tier's answer was acceptable (a judge
or a human verdict; graded scores in 0..1 are accepted). The large tier is *needed* where the
large answer is better than the small one; the router learns that probability.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    dataset: str
    messages: tuple[Mapping[str, Any], ...]
    q_small: float
    q_large: float
    group: str
    tools: bool = False
    cost_small: float | None = None
    cost_large: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """How much the large tier improves on the small one here (may be negative)."""
        return self.q_large - self.q_small


def _quality(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
        return float(value)
    raise ValueError(f"{where}: acceptable values must be booleans or numbers in 0..1")


def _optional_cost(record: Mapping[str, Any], tier: str) -> float | None:
    cost = record.get("cost")
    if isinstance(cost, Mapping) and isinstance(cost.get(tier), int | float):
        return float(cost[tier])
    return None


def parse_log_record(record: Mapping[str, Any], where: str, dataset: str = "logs") -> Example:
    """One user-log line (see the module docstring) as an Example."""
    messages = record.get("messages")
    acceptable = record.get("acceptable")
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: `messages` must be a non-empty list of OpenAI messages")
    if not isinstance(acceptable, Mapping) or not {"small", "large"} <= acceptable.keys():
        raise ValueError(f"{where}: `acceptable` must be an object with `small` and `large`")
    return Example(
        dataset=dataset,
        messages=tuple(messages),
        q_small=_quality(acceptable["small"], where),
        q_large=_quality(acceptable["large"], where),
        group=str(record.get("group", record.get("id", where))),
        tools=bool(record.get("tools", False)),
        cost_small=_optional_cost(record, "small"),
        cost_large=_optional_cost(record, "large"),
    )


def read_logs(path: Path, dataset: str = "logs") -> Iterator[Example]:
    """Examples from a user-log JSONL file; blank lines are skipped, bad lines raise."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield parse_log_record(json.loads(line), f"{path}:{number}", dataset)
