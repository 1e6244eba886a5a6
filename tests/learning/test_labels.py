"""Label records and their export in the router's user-log format (read by train --logs)."""

import asyncio
from typing import Any

from gateway.learning.labels import Labels, export_lines, to_log_line
from gateway.router.lab.examples import parse_log_record
from gateway.store.memory import MemoryStore

MSGS = [{"role": "user", "content": "hi"}]


def label(source: str, **kw: Any) -> dict[str, Any]:
    return {"request_id": "r1", "source": source, "team": "t", "route": "auto",
            "messages": MSGS, "cost": {"small": "0.0001", "large": "0.002"}, **kw}  # fmt: skip


def test_paired_verdicts_become_acceptable_pairs_that_train_reads() -> None:
    cases = {1.0: 1.0, 0.75: 1.0, 0.5: 1.0, 0.25: 0.5, 0.0: 0.0}
    for score, small in cases.items():
        line = to_log_line(label("paired", small_score=score))
        assert line is not None and line["acceptable"] == {"small": small, "large": 1.0}
        assert line["cost"] == {"small": 0.0001, "large": 0.002}
        ex = parse_log_record(line, "x")
        assert ex.q_small == small and ex.q_large == 1.0
    assert to_log_line(label("paired", small_score=None, verdict="judge_failed")) is None


def test_cascade_and_feedback_labels() -> None:
    assert to_log_line(label("cascade"))["acceptable"] == {"small": False, "large": True}  # type: ignore[index]
    small = label("feedback", served={"tier": "small"}, feedback={"score": 0.0})
    assert to_log_line(small)["acceptable"] == {"small": 0.0, "large": 1.0}  # type: ignore[index]
    large = label("feedback", served={"tier": "large"}, feedback={"score": 1.0})
    lines, skipped = export_lines([small, large])
    assert len(lines) == 1 and skipped == 1


def test_store_round_trip_with_filters_and_retention() -> None:
    store = MemoryStore()
    labels = Labels(store)

    async def go() -> None:
        await labels.put(label("paired", small_score=1.0), retention_days=1)
        await labels.put({**label("cascade"), "team": "u", "route": "other"}, retention_days=1)
        assert len(await labels.all()) == 2
        assert [x["team"] for x in await labels.all(team="u")] == ["u"]
        assert [x["route"] for x in await labels.all(route="auto")] == ["auto"]
        key = "frugal:learn:label:t:paired:r1"
        assert 0 < store.data.pttl(key) <= 86_400_000

    asyncio.run(go())
