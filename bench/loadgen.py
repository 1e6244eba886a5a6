"""Closed-loop load generator: N concurrent clients (aiohttp, keep-alive, one connection each)
send the same small chat completion back to back for a warm-up and then a measured window.
Prints one JSON object: requests, errors, req/s, latency p50/p99 (whole response read) and,
for streams, time to the first SSE `data:` event.

    .venv/bin/python bench/loadgen.py --url http://127.0.0.1:8080/v1/chat/completions \
        --model fast-small --concurrency 16 --duration 3 [--stream]
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from procs import run_fast

PROMPT = "In one short sentence, what does a cost-aware LLM gateway do?"


@dataclass
class Window:
    start: float
    end: float
    max_requests: int
    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    errors: int = 0
    sent: int = 0
    completed: int = 0  # successful requests, warm-up included (for CPU per request)

    def open(self) -> bool:
        return time.perf_counter() < self.end and self.sent < self.max_requests


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "max_tokens": 32,
                            "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool
) -> tuple[float, float | None]:
    """Latency of one request, and its time to first SSE event when streaming (seconds)."""
    t0 = time.perf_counter()
    first: float | None = None
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        if r.status != 200:
            await r.read()
            raise RuntimeError(f"HTTP {r.status}")
        if not stream:
            data = await r.read()
            if b'"choices"' not in data:
                raise RuntimeError("no choices in the response")
            return time.perf_counter() - t0, None
        done = False
        async for line in r.content:
            if first is None and line.startswith(b"data:"):
                first = time.perf_counter() - t0
            if line.startswith(b"data: [DONE]"):
                done = True
        if not done:
            raise RuntimeError("stream ended without [DONE]")
    return time.perf_counter() - t0, first


async def client(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, w: Window
) -> None:
    while w.open():
        started = time.perf_counter()
        w.sent += 1
        try:
            latency, first = await one(session, url, body, stream)
        except (aiohttp.ClientError, RuntimeError, TimeoutError):
            w.errors += 1
            await asyncio.sleep(0.01)
            continue
        w.completed += 1
        if w.start <= started + latency <= w.end:  # completed inside the window
            w.latencies.append(latency)
            if first is not None:
                w.first_chunk.append(first)


def pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] * 1000 if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def summary(w: Window, measured_s: float, cpu_s: float) -> dict[str, Any]:
    return {
        "requests": len(w.latencies),
        "errors": w.errors,
        "completed_total": w.completed,
        "rps": len(w.latencies) / measured_s,
        "p50_ms": pct(w.latencies, 50),
        "p99_ms": pct(w.latencies, 99),
        "first_chunk_p50_ms": pct(w.first_chunk, 50),
        "first_chunk_p99_ms": pct(w.first_chunk, 99),
        "loadgen_cpu_s": cpu_s,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    body = request_body(args.model, args.stream)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        now = time.perf_counter()
        w = Window(now + args.warmup, now + args.warmup + args.duration, args.max_requests)
        cpu0 = time.process_time()
        tasks = [client(session, args.url, body, args.stream, w) for _ in range(args.concurrency)]
        await asyncio.wait_for(asyncio.gather(*tasks), args.warmup + args.duration + 60)
        cpu = time.process_time() - cpu0
    return summary(w, args.duration, cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--model", default="fast-small")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds discarded first")
    p.add_argument("--max-requests", type=int, default=200_000, help="hard bound on requests")
    p.add_argument("--stream", action="store_true")
    args = p.parse_args()
    result = run_fast(run(args))
    result["pid"] = os.getpid()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
