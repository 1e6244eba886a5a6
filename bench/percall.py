"""CPU and wall time per call of an async operation, run sequentially and from 16 tasks: the
client micro-benchmarks (bench/redis_client.py, bench/http_client.py) print Markdown rows."""

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(name: str, call: Callable[[], Awaitable[Any]], n: int) -> None:
    for _ in range(200):
        await call()
    for tasks in (1, 16):

        async def worker(k: int) -> None:
            for _ in range(k):
                await call()

        c0, t0 = cpu_s(), time.perf_counter()
        await asyncio.gather(*(worker(n // tasks) for _ in range(tasks)))
        cpu, wall = (cpu_s() - c0) / n * 1e6, (time.perf_counter() - t0) / n * 1e6
        print(f"| {name} | {tasks} | {cpu:.0f} | {wall:.0f} |")
