"""Logging set-up: records are formatted and written by a background thread, so a slow log
sink never blocks the event loop. Idempotent (the CLI and each uvicorn worker call it).

The request path logs one line per request, so the event loop's share is kept to appending
the record to a queue: the writer thread formats and writes whatever has piled up in one write
(the standard QueueHandler formats on the caller's thread and writes line by line; that cost
about 0.2 ms of CPU per request here). A record whose arguments are not plain values is
formatted on the caller's thread, so later changes to those objects cannot alter the line.

The queue is bounded (`server.log_queue_max` records, default 10,000): when the sink is slower
than the records arrive, further records are dropped rather than held in memory without limit,
counted (`dropped()`), and reported by the writer in one line once it catches up."""

import atexit
import logging
import os
import sys
import threading
from queue import Empty, SimpleQueue

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_PLAIN = (str, int, float, bool, type(None))
_STOP = object()
DEFAULT_QUEUE_MAX = 10_000


class _Queue:
    """A SimpleQueue with a bound: `put` refuses a record when `limit` are already waiting.
    Puts happen under the handler's lock and takes on the one writer thread, so the two
    counters need no lock of their own."""

    def __init__(self, limit: int) -> None:
        self.items: SimpleQueue[object] = SimpleQueue()
        self.limit = limit
        self.puts = 0
        self.taken = 0
        self.dropped = 0

    def put(self, record: logging.LogRecord) -> None:
        if self.puts - self.taken >= self.limit:
            self.dropped += 1
            return
        self.puts += 1
        self.items.put(record)


class _QueueHandler(logging.Handler):
    def __init__(self, queue: _Queue) -> None:
        super().__init__()
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        args = record.args
        if args and not (isinstance(args, tuple) and all(type(a) in _PLAIN for a in args)):
            record.msg, record.args = record.getMessage(), None
        self.queue.put(record)


class _Writer(threading.Thread):
    """Writes to whatever `sys.stderr` is at the time (tests swap it out and close it)."""

    def __init__(self, queue: _Queue) -> None:
        super().__init__(name="frugal-log-writer", daemon=True)
        self.queue = queue
        self.formatter = logging.Formatter(_FORMAT)
        self.reported = 0  # drops already reported

    def run(self) -> None:
        items = self.queue.items
        while True:
            batch = [items.get()]
            while True:
                try:
                    batch.append(items.get_nowait())
                except Empty:
                    break
            records = [r for r in batch if isinstance(r, logging.LogRecord)]
            self.queue.taken += len(records)
            lines = [self._format(r) for r in records]
            dropped = self.queue.dropped - self.reported
            if dropped:
                self.reported += dropped
                lines.append(self._format(_dropped_record(dropped, self.queue.limit)))
            if lines:
                self._write("".join(lines))
            if any(r is _STOP for r in batch):
                return

    def _format(self, record: logging.LogRecord) -> str:
        try:
            return self.formatter.format(record) + "\n"
        except Exception:  # a bad format string must not stop logging
            return f"{record.levelname} {record.name} unformattable log record: {record.msg!r}\n"

    def _write(self, text: str) -> None:
        stream = sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr: nowhere left to report it
            pass

    def stop(self) -> None:
        self.queue.items.put(_STOP)
        self.join(5)


def _dropped_record(n: int, limit: int) -> logging.LogRecord:
    return logging.LogRecord(
        "frugal.logs", logging.WARNING, __file__, 0,
        "dropped %d log records: more than %d were waiting for a slow log sink "
        "(server.log_queue_max)", (n, limit), None,
    )  # fmt: skip


def _handler() -> _QueueHandler | None:
    return next((h for h in logging.getLogger().handlers if isinstance(h, _QueueHandler)), None)


def set_queue_limit(limit: int) -> None:
    """Apply `server.log_queue_max` once the configuration is known."""
    handler = _handler()
    if handler is not None:
        handler.queue.limit = limit


def dropped() -> int:
    """Log records dropped so far because the queue was full."""
    handler = _handler()
    return handler.queue.dropped if handler is not None else 0


def setup_logging() -> None:
    root = logging.getLogger()
    if _handler() is not None:
        return
    # Log lines name no source file, thread or process: skip collecting them for every record
    # (finding the caller's frame was the largest part of a record's cost).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    queue = _Queue(DEFAULT_QUEUE_MAX)
    writer = _Writer(queue)
    writer.start()
    atexit.register(writer.stop)
    root.handlers = [_QueueHandler(queue)]
    root.setLevel(os.environ.get("FRUGAL_LOG_LEVEL", "INFO").upper())
