"""CPU and wall time per upstream call of the gateway's HTTP/1.1 client (gateway/providers/
http1.py) against aiohttp 3.14 (what the gateway used before) on the same fake upstream
(bench/fake_upstream.py), sequentially and from 16 concurrent tasks, keep-alive.

    .venv/bin/python bench/http_client.py [-n 4000]
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from percall import measure  # noqa: E402
from procs import Child, free_port, python, run_fast, wait_port  # noqa: E402

from gateway.providers.http1 import Client  # noqa: E402

BODY = orjson.dumps({"model": "bench", "max_tokens": 32,
                     "messages": [{"role": "user", "content": "hello there"}]})  # fmt: skip
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


async def main(port: int, n: int) -> None:
    base = f"http://127.0.0.1:{port}/v1"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    client = Client(base, 5.0)

    async def via_aiohttp() -> Any:
        url = f"{base}/chat/completions"
        async with session.post(url, data=BODY, headers=HEADERS) as r:
            return orjson.loads(await r.read())

    async def via_http1() -> Any:
        head = client.head("POST", "chat/completions", HEADERS, len(BODY))
        resp = await client.request(head, BODY, 30.0)
        return orjson.loads(await resp.read())

    print("| client | concurrent tasks | CPU µs per call | wall µs per call |")
    print("|---|---:|---:|---:|")
    await measure("aiohttp 3.14 `ClientSession`", via_aiohttp, n)
    await measure("gateway/providers/http1.py", via_http1, n)
    await session.close()
    client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=4000)
    args = p.parse_args()
    port = free_port()
    up = Child("upstream", [python(), str(Path(__file__).parent / "fake_upstream.py"), "--port",
                            str(port)], Path(tempfile.mkdtemp()))  # fmt: skip
    try:
        wait_port(port, up)
        run_fast(main(port, args.n))
    finally:
        up.stop()
