"""Logging set-up: records are formatted and written by a background thread, so a slow log
sink never blocks the event loop. Idempotent (the CLI and each uvicorn worker call it)."""

import atexit
import logging
import os
import sys
from logging.handlers import QueueHandler, QueueListener
from queue import SimpleQueue

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (tests swap it out and close it)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging() -> None:
    root = logging.getLogger()
    if any(isinstance(h, QueueHandler) for h in root.handlers):
        return
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(_FORMAT))
    queue: SimpleQueue[logging.LogRecord] = SimpleQueue()
    listener = QueueListener(queue, handler)
    listener.start()
    atexit.register(listener.stop)
    root.handlers = [QueueHandler(queue)]
    root.setLevel(os.environ.get("FRUGAL_LOG_LEVEL", "INFO").upper())
