"""A small HTTP/1.1 client for OpenAI-compatible upstreams: keep-alive connections per origin,
requests written in one piece, responses parsed by httptools (uvicorn's parser, C), bodies
read whole or streamed chunk by chunk.

Why not aiohttp (decision of issue 12, re-measured with bench/http_client.py on 2 busy shared
cores): aiohttp 3.14 spends 69-70 µs of CPU per upstream call at 16 tasks (118-131 at one), this
client 25-31 µs (31-71), of which the hardening below adds ~3-8 µs (README, "Hardening /
Upstream client"). Keeping it means owning its conformance, so the behaviour a
client owes RFC 9112 is pinned by tests/hardening/test_http1_conformance.py: interim 1xx
responses skipped (101 refused), `Connection: close` honoured, Content-Length and chunked
bodies (trailers read and dropped), 204/304 without a body, a body without a length ending at
close, limits on the head and the body, `http://` proxies (absolute-form requests, `CONNECT`
tunnels for https: egress.py), a per-origin TLS context (CA bundle, client certificate).
It does what the gateway needs and no more: POST and GET (never HEAD), no cookies, no
redirects, no compression (it sends no Accept-Encoding).

Bounds: `read_s` is the longest wait for the next byte; `deadline` (monotonic) the end of the
whole attempt, connect to last byte, so an upstream trickling a byte a second still ends;
`Limits` caps the head (bytes and count of header lines) and the body.

A connection is reused only after a response was read to its end and the server allowed it,
and only while it has been idle for less than `idle_s` (servers commonly close idle connections
after 5 s; racing that close is what makes a reused connection fail); one known closed is
skipped before anything is written. The client sends a request again by itself only for a GET
whose reused connection failed before any byte of the answer: a POST is never sent twice.
Failures are `NotSent` (nothing reached the upstream: safe to retry anywhere), else
`ConnectionError`, `TimeoutError` or `ProtocolError` (the upstream may have processed it).
"""

import asyncio
import ssl
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from gateway.providers.egress import Proxy, open_tunnel, proxy_for

MiB = 1024 * 1024


class ProtocolError(ConnectionError):
    """The upstream answered something that is not HTTP/1.1, or too much of it."""


class TooLarge(ProtocolError):
    """The response's head or body exceeded its limit."""


class NotSent(ConnectionError):
    """No byte of the request reached the upstream (connect, TLS or proxy failed)."""


def header_safe(value: str) -> bool:
    """Whether `value` can go in a header line: no CR, LF or other control character (RFC 9110
    §5.5); checked once at start-up for every header a client sends, never per request."""
    return value.isprintable() and value.isascii()


@dataclass(frozen=True)
class Limits:
    max_response_bytes: int = 32 * MiB  # a body (streams included), after de-chunking
    max_header_bytes: int = 64 * 1024  # the status line and headers, interim responses included
    max_headers: int = 100  # header lines of one response


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    path: str  # the base URL's path, e.g. /v1

    @classmethod
    def parse(cls, base_url: str) -> "Origin":
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        return cls(u.scheme, u.hostname, port, u.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class _Connection(asyncio.Protocol):
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.complete = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.head_done = False
        self.interim = False  # parsing a 1xx response, which is skipped
        self.head_size = 0  # bytes of header lines (interim responses and trailers too)
        self.unread = 0  # bytes fed since the parser last made progress (a head or body piece)
        self.body_bytes = 0
        self.last_rx = 0.0
        self.idle_since = 0.0
        self.received = False  # any byte of the current response
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.received = True
        self.unread += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as e:
            self._fail(ProtocolError(f"the upstream sent invalid HTTP: {e}"))
        if self.unread > self.limits.max_header_bytes:  # httptools buffers a header until its end
            self._fail(self._head_too_large())
        if self.error is not None:
            self.close()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and exc is None and self._ends_at_close():
            self.complete = True  # a body with neither a length nor chunks ends with the stream
        if not self.complete:
            self._fail(ConnectionError(f"the upstream closed the connection ({exc or 'EOF'})"))
        self._wake()

    def _ends_at_close(self) -> bool:
        names = {k for k, _ in self.headers}
        return self.head_done and not names & {b"content-length", b"transfer-encoding"}

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limits.max_header_bytes:
            self._fail(self._head_too_large())
        if self.head_done:
            return  # a chunked body's trailer fields: dropped (RFC 9110 §6.5.1 allows it)
        self.headers.append((name.lower(), value))
        if len(self.headers) > self.limits.max_headers:
            self._fail(TooLarge(f"the upstream sent over {self.limits.max_headers} headers"))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:
            self._fail(ProtocolError("the upstream switched protocols (101)"))
        elif 100 <= status < 200:  # 100 Continue, 103 Early Hints, ...: the answer follows
            self.interim = True
            self.headers = []
            return
        self.status = status
        self.head_done = True
        self.unread = 0
        for k, v in self.headers:
            big = k == b"content-length" and v.strip().isdigit()
            if big and int(v) > self.limits.max_response_bytes:
                self._fail(self._too_large())

    def on_body(self, body: bytes) -> None:
        self.unread = 0
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_response_bytes:
            self._fail(self._too_large())
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside the callback

    def _head_too_large(self) -> TooLarge:
        return TooLarge(f"the upstream's headers exceed {self.limits.max_header_bytes} B")

    def _too_large(self) -> TooLarge:
        return TooLarge(f"the upstream's response exceeds {self.limits.max_response_bytes} B")

    # the client's side
    def start(self, request: bytes) -> None:
        assert self.transport is not None
        self.status, self.headers, self.complete, self.head_done = 0, [], False, False
        self.received = self.interim = False
        self.head_size = self.unread = self.body_bytes = 0
        self.chunks.clear()
        self.last_rx = time.monotonic()
        self.transport.write(request)

    async def wait(self, read_s: float, deadline: float) -> None:
        """Until something new arrived (or failed), at most `read_s` after the last byte and
        never past `deadline`."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        delay = min(read_s, deadline - time.monotonic())
        timer = loop.call_later(max(delay, 0.0), self._expire, self.waiter, read_s, deadline)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    def _expire(self, waiter: "asyncio.Future[None]", read_s: float, deadline: float) -> None:
        if waiter.done():
            return
        now = time.monotonic()
        idle = now - self.last_rx
        if now >= deadline:
            self._fail(TimeoutError("the upstream did not finish within the attempt's deadline"))
        elif idle < read_s:  # data arrived meanwhile: wait the rest of the period
            delay = min(read_s - idle, deadline - now)
            asyncio.get_running_loop().call_later(delay, self._expire, waiter, read_s, deadline)
            return
        else:
            self._fail(TimeoutError(f"no data from the upstream for {read_s:g} s"))
        self._wake()
        self.close()

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response:
    """One response: `status` and `headers` are known on return from `Client.request`; the
    body is read with `read()` or `iter_chunks()`, once. `close()` gives up on the rest."""

    def __init__(self, client: "Client", conn: _Connection, read_s: float, deadline: float) -> None:
        self._client = client
        self._conn = conn
        self._read_s = read_s
        self._deadline = deadline
        self.status = conn.status
        self.headers = conn.headers
        self._done = False

    async def read(self) -> bytes:
        parts = [b"".join(c) async for c in self._batches()]
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for batch in self._batches():
            for chunk in batch:
                yield chunk

    async def _batches(self) -> AsyncIterator[list[bytes]]:
        conn = self._conn
        try:
            while True:
                if conn.chunks:
                    batch = list(conn.chunks)
                    conn.chunks.clear()
                    yield batch
                    continue
                if conn.complete:
                    break
                await conn.wait(self._read_s, self._deadline)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._conn.reusable:
            self._client.release(self._conn)
        else:
            self._conn.close()

    def close(self) -> None:
        """Done with the response: the connection is kept when it was read to the end (a
        stream's last chunk usually arrives with its `[DONE]` event), closed otherwise."""
        if not self._done:
            self._done = True
            if self._conn.reusable and not self._conn.chunks:
                self._client.release(self._conn)
            else:
                self._conn.close()


class Client:
    """Keep-alive connections to one origin, directly or through the environment's proxy."""

    def __init__(
        self, base_url: str, connect_s: float, max_idle: int = 256, *,
        limits: Limits | None = None, tls: ssl.SSLContext | None = None, idle_s: float = 4.0,
        proxy: Proxy | bool | None = True,
    ) -> None:  # fmt: skip
        """`tls`: the context for an https origin (default: the system's CAs). `proxy`: True
        reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY now; None or False goes direct."""
        self.origin = o = Origin.parse(base_url)
        self.connect_s = connect_s
        self.max_idle = max_idle
        self.limits = limits or Limits()
        self.idle_s = idle_s
        self._idle: list[_Connection] = []
        # Every open connection, busy ones included, so that close() leaves none behind (a
        # response abandoned mid-body would otherwise keep its socket until garbage collection).
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        self._ssl = (tls or ssl.create_default_context()) if o.scheme == "https" else None
        self.proxy = proxy_for(o.scheme, o.host, o.port) if proxy is True else proxy or None
        self._target = o.path
        self._proxy_auth = ""
        if self.proxy is not None and self._ssl is None:  # absolute-form, RFC 9112 §3.2.2
            self._target = f"http://{o.host_header}{o.path}"
            if self.proxy.authorization:
                self._proxy_auth = f"Proxy-Authorization: {self.proxy.authorization}\r\n"

    def head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        """The request line and headers, for `path` below the base URL's path."""
        if method == "HEAD":  # its response has no body whatever its headers say
            raise ValueError("this client does not send HEAD requests")
        lines = [f"{method} {self._target}/{path} HTTP/1.1", f"Host: {self.origin.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n" + self._proxy_auth + "\r\n").encode("latin-1")

    async def request(
        self, head: bytes, body: bytes, read_s: float, deadline: float | None = None
    ) -> Response:
        """Send a request (from `head()`) and wait for the response's status and headers.

        Sent again on a new connection only when a reused connection failed before any
        byte of the answer and the request is a GET; a POST is never sent twice."""
        if deadline is None:
            deadline = time.monotonic() + 86400.0
        idempotent = head.startswith(b"GET ")
        for fresh in (False, True):
            conn, reused = await self._acquire(fresh, deadline)
            try:
                conn.start(head + body)
                while not conn.head_done:
                    await conn.wait(read_s, deadline)
            except ConnectionError:
                conn.close()
                if reused and idempotent and not conn.received and not fresh:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, conn, read_s, deadline)
        raise AssertionError("unreachable")

    async def _acquire(self, fresh: bool, deadline: float) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            conn = self._idle.pop()
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue
            if now - conn.idle_since > self.idle_s:
                conn.close()  # the server may be closing it right now
                continue
            return conn, True
        o = self.origin
        limit = min(self.connect_s, deadline - now)
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                return await self._connect(), False
        except TimeoutError:
            raise NotSent(f"connecting to {o.authority} took over {limit:g} s") from None
        except (OSError, ssl.SSLError) as e:  # refused, unreachable, TLS, proxy
            where = f" through the proxy {self.proxy.host}" if self.proxy else ""
            raise NotSent(f"cannot connect to {o.authority}{where}: {e}") from e

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        o, proxy = self.origin, self.proxy
        conn = _Connection(self.limits)
        self._open.add(conn)
        if proxy is not None and self._ssl is not None:
            conn.connection_made(await open_tunnel(proxy, o.authority, conn, self._ssl, o.host))
            return conn
        host, port = (proxy.host, proxy.port) if proxy is not None else (o.host, o.port)
        server = o.host if self._ssl else None
        await loop.create_connection(lambda: conn, host, port, ssl=self._ssl,
                                     server_hostname=server)  # fmt: skip
        return conn

    def release(self, conn: _Connection) -> None:
        if not self._closed and len(self._idle) < self.max_idle:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close every connection, idle or busy: a response still being read fails."""
        self._closed = True
        for conn in [*self._idle, *self._open]:
            conn.close()
        self._idle.clear()
        self._open.clear()

    def __repr__(self) -> str:
        return f"Client({self.origin.scheme}://{self.origin.host_header}{self.origin.path})"
