"""A small pipelined Redis client for the request path (one server: redis://, rediss://, unix://).

redis-py's asyncio client spends 70-90 µs of CPU per command on this machine (a connection
checked out of a pool per command, command packing, retry wrappers): three budget scripts per
request made Redis the largest cost of a request. This client packs commands with hiredis,
writes them all onto one connection and matches replies in order (Redis answers a connection's
commands in order): about 8 µs per command under load (bench/redis_client.py measures both).

Kept after the hardening review (bring it to parity or go back to redis-py): it is at parity for
what the gateway uses (error classes below, with their conformance suite; `rediss://` with a
CA bundle, client certificate and verification options; no password in any repr). Measured
after those changes (bench/redis_client.py -n 3000, 2 busy cores): 38 µs of CPU per command
from 1 task and 8 µs from 16, against redis-py 8.1's 88 and 74: going back would cost ~65 µs
per command, three commands per request.

Failures surface as `ConnectionError` (an `OSError`) or `TimeoutError`, which the budget guard
and the cache treat as "store down". Error replies are classified by their RESP error code (the
first word, also when Redis wraps it in a script error): a server that cannot serve right now
(`READONLY` after a failover, `OOM`, `LOADING`, `BUSY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`,
`MISCONF`, `NOREPLICAS`) or refuses our credentials (`NOAUTH`, `WRONGPASS`, `NOPERM`) raises
`StoreUnavailable`, which is a `ConnectionError`, so the configured fail mode applies; any other
error reply (`ERR`, `WRONGTYPE`, a script bug) is a `ReplyError`: a bug, raised as is.
`NOSCRIPT` is handled by the store (it loads the script and runs it again).

The client speaks RESP2 (it never sends `HELLO 3`). A frame hiredis cannot parse is a protocol
error: the connection is dropped and every waiting command fails with `StoreUnavailable`; a
RESP3 push frame (`>`) is never taken as a command's reply. tests/hardening/test_resp_errors.py
is the conformance suite for these error classes (real Redis where it can produce them, a
scripted RESP server for `LOADING`, `MASTERDOWN`, RESP3 frames and broken frames).

A command that times out keeps its place in the reply order, so later replies still reach their
own callers; when nothing at all has arrived on the connection for a whole timeout, the
connection is considered dead and dropped, failing every command waiting on it.
The next command reconnects.
"""

import asyncio
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from gateway.store.settings import RedisTLS


def _pack(args: tuple[Any, ...]) -> bytes:
    packed: bytes = hiredis.pack_command(args)  # its stub types a 1-tuple; any length works
    return packed


class ReplyError(Exception):
    """Redis answered with an error (e.g. `NOSCRIPT`, `WRONGTYPE`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = error_code(message)


class StoreUnavailable(ReplyError, ConnectionError):
    """Redis answered, but cannot serve now (or refuses our credentials): the fail mode applies."""


# Error codes meaning "this server cannot serve this command right now", not "this is a bug".
UNAVAILABLE_CODES = frozenset({
    "READONLY", "OOM", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MISCONF",
    "NOREPLICAS", "NOAUTH", "WRONGPASS", "NOPERM",
})  # fmt: skip
_SCRIPT_ERROR = re.compile(r"^(?:ERR )?Error running script .*?: -([A-Z]+) ")  # redis-py drops ERR


def error_code(message: str) -> str:
    """The RESP error code of an error reply: its first word; for an error raised by a command
    inside a Lua script (`ERR Error running script (...): @user_script:1: -OOM ...`), the
    inner command's code."""
    inner = _SCRIPT_ERROR.match(message[:512])
    if inner is not None:
        return inner.group(1)
    return message.split(" ", 1)[0]


def reply_error(message: str) -> ReplyError:
    """The exception for an error reply, classified by its code."""
    if error_code(message) in UNAVAILABLE_CODES:
        return StoreUnavailable(message)
    return ReplyError(message)


@dataclass(frozen=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr or a log line

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
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as e:
                self._broken(f"Redis sent a frame this client cannot parse ({e})")
                return
            if reply is False:
                return
            if isinstance(reply, hiredis.PushNotification):
                continue  # RESP3 out-of-band data is nobody's reply
            if not waiting:
                self._broken("Redis sent a reply nobody asked for")
                return
            fut = waiting.popleft()
            if fut.done():  # its caller timed out
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(reply_error(str(reply)))
            else:
                fut.set_result(reply)

    def _broken(self, why: str) -> None:
        """The reply stream cannot be trusted any more: drop the connection."""
        self.lost = True
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(StoreUnavailable(f"PROTOCOL {why}"))
        if self.transport is not None:
            self.transport.abort()

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


def tls_context(opts: RedisTLS) -> ssl.SSLContext:
    """The TLS context of a `rediss://` connection: a CA bundle, a client certificate, and
    how strictly the server's certificate is checked."""
    ctx = ssl.create_default_context(cafile=str(opts.ca_file) if opts.ca_file else None)
    if opts.cert_file is not None:
        ctx.load_cert_chain(opts.cert_file, opts.key_file)
    if not opts.verify or not opts.check_hostname:
        ctx.check_hostname = False
    if not opts.verify:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RespClient:
    def __init__(self, url: str, timeout_s: float = 0.5, tls: RedisTLS | None = None) -> None:
        self.endpoint = Endpoint.parse(url)
        self.timeout_s = timeout_s
        opts = tls or RedisTLS()
        self._tls = tls_context(opts) if self.endpoint.tls else None
        self._server_name = opts.server_name or self.endpoint.host
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    def __repr__(self) -> str:
        return f"RespClient({self.endpoint!r})"  # the endpoint's repr leaves the password out

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
                    tls, name = self._tls, self._server_name
                    _, proto = await loop.create_connection(
                        _Protocol, e.host, e.port, ssl=tls, server_hostname=name if tls else None
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
