"""The threads that run the embedding model, off the event loop.

`asyncio.to_thread` would use the loop's default pool (6 threads on 2 cores), and each ONNX run
in flight holds its own activation memory, which the process keeps. Measured on 2 cores with the
`auto` route at 16 clients (bench rig, unique prompts of 15-200 tokens), by runs at once:

| runs at once | req/s | resident memory after the load |
|---:|---:|---:|
| 1 | 74 | 231 MB |
| 2 (default) | 82 | 243 MB |
| 3-4 | 95 | 256-261 MB |
| 6 (the default pool) | 105 | 273-290 MB |

`FRUGAL_ROUTER_RUNS` sets it. The router and the semantic cache share the model, so they share
these threads too.
"""

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
ENV = "FRUGAL_ROUTER_RUNS"
DEFAULT_RUNS = 2
log = logging.getLogger("frugal.router")


def runs_from_env() -> int:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_RUNS
    if not raw.isdigit() or int(raw) < 1:
        log.warning("%s=%r is not a positive integer; using %d", ENV, raw, DEFAULT_RUNS)
        return DEFAULT_RUNS
    return int(raw)


_POOL = ThreadPoolExecutor(max_workers=runs_from_env(), thread_name_prefix="frugal-model")


async def run_model(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on a model thread."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)
