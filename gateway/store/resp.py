"""A small pipelined Redis client for the request path (one server: redis://, rediss://, unix://).

redis-py's asyncio client spends 70-90 µs of CPU per command on this machine (a connection
checked out of a pool per command, command packing, retry wrappers): three budget scripts per
request made Redis the largest cost of a request. This client packs commands with hiredis,
writes them all onto one connection and matches replies in order (Redis answers a connection's
commands in order): about 8 µs per command under load (bench/redis_client.py measures both).

Failures surface as `ConnectionError` (an `OSError`) or `TimeoutError`, which the budget guard
and the cache treat as "store down". A command that times out keeps its place in the reply
order, so later replies still reach their own callers; when nothing at all has arrived on the
connection for a whole timeout, the connection is considered dead and dropped, failing every
command waiting on it. The next command reconnects.
"""

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


def _pack(args: tuple[Any, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(args)  # its stub types a 1-tuple; any length works
    return packed


class ReplyError(Exception):
    """Redis answered with an error (e.g. `NOSCRIPT`, `WRONGTYPE`)."""


@dataclass(frozen=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        u = urlsplit(url)
        query = parse_qs(u.query)
        user = unquote(u.username) if u.username else None
        password = unquote(u.password) if u.password else None
        if "password" in query:
            password = query["password"][0]
        if u.scheme == "unix":
            db = int(query.get("db", ["0"])[0])
            return cls(path=u.path, db=db, username=user, password=password)
        if u.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {u.scheme!r}")
        db_text = u.path.lstrip("/") or query.get("db", ["0"])[0]
        return cls(host=u.hostname or "127.0.0.1", port=u.port or 6379, tls=u.scheme == "rediss",
                   db=int(db_text), username=user, password=password)  # fmt: skip


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.last_rx = time.monotonic()
        self.lost = False
        self.outbox: list[bytes] = []  # packed commands not yet written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.reader.feed(data)
        waiting = self.waiting
        while (reply := self.reader.gets()) is not False:
            fut = waiting.popleft()
            if fut.done():  # its caller timed out
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ReplyError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def send(self, packed: bytes) -> "asyncio.Future[Any]":
        fut = asyncio.get_running_loop().create_future()
        if not self.waiting:
            self.last_rx = time.monotonic()  # the silence clock starts with the first command
        self.waiting.append(fut)
        if not self.outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outbox.append(packed)
        return fut

    def flush(self) -> None:
        """Write every command queued during this turn of the event loop in one system call
        (at 16 concurrent requests, one write per command was ~9% of a request's CPU)."""
        out, self.outbox = self.outbox, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))


class RespClient:
    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        self.endpoint = Endpoint.parse(url)
        self.timeout_s = timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def call(self, *args: Any) -> Any:
        """Send one command and wait for its reply (at most `timeout_s`)."""
        proto = self._proto
        if proto is None or proto.lost:
            proto = await self._connect()
        fut = proto.send(_pack(args))
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.timeout_s, self._expire, proto, fut, self.timeout_s)
        try:
            return await fut
        finally:
            timer.cancel()

    def _expire(self, proto: _Protocol, fut: "asyncio.Future[Any]", timeout: float) -> None:
        if fut.done():
            return
        fut.set_exception(TimeoutError(f"Redis did not answer within {timeout * 1000:g} ms"))
        if time.monotonic() - proto.last_rx >= timeout and proto.transport is not None:
            proto.lost = True  # nothing arrived for a whole timeout: a dead connection
            proto.transport.abort()

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        pending = self._connecting
        try:
            proto = await asyncio.shield(pending)
        finally:
            if pending.done() and self._connecting is pending:
                self._connecting = None
        return proto

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        e = self.endpoint
        try:
            async with asyncio.timeout(self.timeout_s):
                if e.path is not None:
                    _, proto = await loop.create_unix_connection(_Protocol, e.path)
                else:
                    tls = ssl.create_default_context() if e.tls else None
                    _, proto = await loop.create_connection(
                        _Protocol, e.host, e.port, ssl=tls, server_hostname=e.host if tls else None
                    )
        except TimeoutError:
            raise TimeoutError(f"connecting to Redis took over {self.timeout_s:g} s") from None
        hello: list[asyncio.Future[Any]] = []
        if e.password is not None:
            auth = ("AUTH", e.username, e.password) if e.username else ("AUTH", e.password)
            hello.append(proto.send(_pack(auth)))
        if e.db:
            hello.append(proto.send(_pack(("SELECT", e.db))))
        try:
            async with asyncio.timeout(self.timeout_s):
                for fut in hello:
                    await fut
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        self._proto = proto
        return proto

    async def close(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
