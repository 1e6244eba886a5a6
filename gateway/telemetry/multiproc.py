"""Set up prometheus_client's multiprocess mode for `frugal serve --workers N`: one directory
of memory-mapped value files shared by the workers, fresh for each run (values left by an
earlier run would otherwise be summed into this one's)."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int) -> Callable[[], None]:
    """Before the workers start: point them at one directory. Returns the clean-up."""
    given = os.environ.get(ENV)
    if given:  # the operator's choice (e.g. an emptyDir volume): start it empty
        Path(given).mkdir(parents=True, exist_ok=True)
        for f in Path(given).glob("*.db"):
            f.unlink(missing_ok=True)
        return lambda: None
    if workers <= 1:
        return lambda: None
    path = tempfile.mkdtemp(prefix="frugal-metrics-")
    os.environ[ENV] = path

    def cleanup() -> None:
        os.environ.pop(ENV, None)
        shutil.rmtree(path, ignore_errors=True)

    return cleanup
