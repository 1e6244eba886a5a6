"""Logging set-up: records are formatted and written by a background thread, so a slow log
sink never blocks the event loop. Idempotent (the CLI and each uvicorn worker call it).

The request path logs one line per request, so the event loop's share is kept to appending
the record to a queue: the writer thread formats and writes whatever has piled up in one write
(the standard QueueHandler formats on the caller's thread and writes line by line; that cost
about 0.2 ms of CPU per request here). A record whose arguments are not plain values is
formatted on the caller's thread, so later changes to those objects cannot alter the line."""

import atexit
import logging
import os
import sys
import threading
from queue import Empty, SimpleQueue

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_PLAIN = (str, int, float, bool, type(None))
_STOP = object()


class _QueueHandler(logging.Handler):
    def __init__(self, queue: "SimpleQueue[object]") -> None:
        super().__init__()
        self.queue = queue

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if args and not (isinstance(args, tuple) and all(type(a) in _PLAIN for a in args)):
            record.msg, record.args = record.getMessage(), None
        self.queue.put(record)


class _Writer(threading.Thread):
    """Writes to whatever `sys.stderr` is at the time (tests swap it out and close it)."""

    def __init__(self, queue: "SimpleQueue[object]") -> None:
        super().__init__(name="frugal-log-writer", daemon=True)
        self.queue = queue
        self.formatter = logging.Formatter(_FORMAT)

    def run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except Empty:
                    break
            lines = [self._format(r) for r in batch if isinstance(r, logging.LogRecord)]
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
        self.queue.put(_STOP)
        self.join(5)


def setup_logging() -> None:
    root = logging.getLogger()
    if any(isinstance(h, _QueueHandler) for h in root.handlers):
        return
    # Log lines name no source file, thread or process: skip collecting them for every record
    # (finding the caller's frame was the largest part of a record's cost).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    queue: SimpleQueue[object] = SimpleQueue()
    writer = _Writer(queue)
    writer.start()
    atexit.register(writer.stop)
    root.handlers = [_QueueHandler(queue)]
    root.setLevel(os.environ.get("FRUGAL_LOG_LEVEL", "INFO").upper())
