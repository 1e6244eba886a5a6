"""The log queue is bounded: with a stalled log sink, records beyond `server.log_queue_max`
are dropped (not held in memory without limit), counted, and reported in one line once the
sink catches up (issue 12, problem 8)."""

import io
import logging
import sys
import threading

import pytest

from gateway import logs


class StalledStderr(io.StringIO):
    """A stderr whose first write blocks until released: a log sink that stopped draining."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, s: str) -> int:
        self.entered.set()
        assert self.release.wait(10)
        return super().write(s)


def test_a_stalled_sink_drops_and_counts_records_beyond_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = StalledStderr()
    monkeypatch.setattr(sys, "stderr", stream)
    queue = logs._Queue(limit=50)
    handler = logs._QueueHandler(queue)
    writer = logs._Writer(queue)
    writer.start()
    log = logging.getLogger("frugal.test.bounds")
    monkeypatch.setattr(log, "handlers", [handler])
    monkeypatch.setattr(log, "propagate", False)
    log.setLevel(logging.INFO)
    try:
        log.info("first")
        assert stream.entered.wait(5)  # the writer is now stuck writing "first"
        for i in range(500):
            log.info("record %d", i)
        assert queue.puts - queue.taken == 50  # the bound holds while the sink is stalled
        assert queue.dropped == 450
    finally:
        stream.release.set()
        writer.stop()
    lines = stream.getvalue().splitlines()
    assert [line.split()[-1] for line in lines[1:51]] == [str(i) for i in range(50)]
    assert any("dropped 450 log records" in line for line in lines)
    assert len(lines) == 52  # "first", 50 records, one line reporting the drops


def test_the_bound_comes_from_the_configuration() -> None:
    from gateway.config import ServerConfig

    assert ServerConfig().log_queue_max == logs.DEFAULT_QUEUE_MAX == 10_000
    with pytest.raises(ValueError, match="log_queue_max"):
        ServerConfig(log_queue_max=0)
