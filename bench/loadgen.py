"""Closed-loop load generator: N concurrent clients (aiohttp, keep-alive, one connection each)
send a small chat completion back to back for a warm-up and then a measured window: the same
request every time, or with `--unique` a different one each time (a counter in the prompt, so
no cache or memo answers it), or with `--mix` realistic prompts of three sizes, each unique.
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
MIX = [  # for the `auto` route: the router embeds each one (about 15, 60 and 200 tokens)
    PROMPT,
    "A train leaves the station at 9:40 and travels 210 km at 84 km/h, then waits 12 minutes "
    "and covers the last 95 km at 76 km/h. At what time does it arrive? Show each step of the "
    "calculation and check the result.",
    "You are reviewing a pull request. The function below parses ISO-8601 durations such as "
    "P3DT4H12M but fails on fractional seconds and on weeks.\n\n```python\n"
    "def parse(s):\n"
    "    m = re.match(r'P(?:(\\d+)D)?(?:T(?:(\\d+)H)?(?:(\\d+)M)?(?:(\\d+)S)?)?', s)\n"
    "    d, h, mi, se = (int(x or 0) for x in m.groups())\n"
    "    return ((d * 24 + h) * 60 + mi) * 60 + se\n```\n\nExplain both bugs, propose a "
    "corrected implementation that also rejects malformed input, and list the test cases you "
    "would add, including edge cases such as an empty string, 'PT' alone and negative values.",
]


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


class Bodies:
    """Request bodies: always the same one, or a new one for every request."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.n = 0
        self.fixed = None if args.unique or args.mix else self.make(PROMPT)

    def make(self, prompt: str) -> bytes:
        body: dict[str, Any] = {"model": self.args.model, "max_tokens": 32,
                                "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        if self.args.temperature is not None:
            body["temperature"] = self.args.temperature
        if self.args.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def next(self) -> bytes:
        if self.fixed is not None:
            return self.fixed
        self.n += 1
        base = MIX[self.n % len(MIX)] if self.args.mix else PROMPT
        return self.make(f"{base} (request {os.getpid()}-{self.n})")


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, headers: dict[str, str]
) -> tuple[float, float | None]:
    """Latency of one request, and its time to first SSE event when streaming (seconds)."""
    t0 = time.perf_counter()
    first: float | None = None
    async with session.post(url, data=body, headers=headers) as r:
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
    session: aiohttp.ClientSession, args: argparse.Namespace, bodies: Bodies, w: Window
) -> None:
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    while w.open():
        body = bodies.next()
        started = time.perf_counter()
        w.sent += 1
        try:
            latency, first = await one(session, args.url, body, args.stream, headers)
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
    bodies = Bodies(args)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        now = time.perf_counter()
        w = Window(now + args.warmup, now + args.warmup + args.duration, args.max_requests)
        cpu0 = time.process_time()
        tasks = [client(session, args, bodies, w) for _ in range(args.concurrency)]
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
    p.add_argument("--temperature", type=float, help="sent when given (0 makes it cacheable)")
    p.add_argument("--unique", action="store_true", help="a different prompt every request")
    p.add_argument("--mix", action="store_true", help="unique prompts of three sizes")
    p.add_argument("--key", default=os.environ.get("LOADGEN_KEY"), help="Bearer key to send")
    args = p.parse_args()
    result = run_fast(run(args))
    result["pid"] = os.getpid()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
