"""A small HTTP/1.1 client for OpenAI-compatible upstreams: keep-alive connections per origin,
requests written in one piece, responses parsed by httptools (uvicorn's parser, C), bodies
read whole or streamed chunk by chunk.

aiohttp spent 75-110 µs of CPU per upstream call here, as much as the rest of a request's
routing; this client spends 13-18 µs (bench/http_client.py measures both). It does what the
gateway needs and no more: POST and GET, Content-Length and chunked bodies, TLS, no cookies,
no redirects, no proxies, no compression (it sends no Accept-Encoding).

A connection is reused only after a response was read to its end and the server allowed it;
one whose response was abandoned (a stream the client left) is closed. `read_s` bounds the
wait for each piece of the response (like a socket read timeout), not the whole response.
Failures are `ConnectionError`, `TimeoutError` or `ProtocolError`.
"""

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


class ProtocolError(ConnectionError):
    """The upstream answered something that is not HTTP/1.1."""


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


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
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
        self.last_rx = 0.0
        self.received = False  # any byte of the current response
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as e:
            self._fail(ProtocolError(f"the upstream sent invalid HTTP: {e}"))
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
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside the callback

    # the client's side
    def start(self, request: bytes) -> None:
        assert self.transport is not None
        self.status, self.headers, self.complete, self.head_done = 0, [], False, False
        self.received = False
        self.chunks.clear()
        self.last_rx = time.monotonic()
        self.transport.write(request)

    async def wait(self, read_s: float) -> None:
        """Until something new arrived (or failed), at most `read_s` after the last byte."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        timer = loop.call_later(read_s, self._expire, self.waiter, read_s)
        try:
            await self.waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    def _expire(self, waiter: "asyncio.Future[None]", read_s: float) -> None:
        idle = time.monotonic() - self.last_rx
        if waiter.done():
            return
        if idle < read_s:  # data arrived meanwhile: wait the rest of the period
            asyncio.get_running_loop().call_later(read_s - idle, self._expire, waiter, read_s)
            return
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

    def __init__(self, client: "Client", conn: _Connection, read_s: float) -> None:
        self._client = client
        self._conn = conn
        self._read_s = read_s
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
                await conn.wait(self._read_s)
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
    """Keep-alive connections to one origin."""

    def __init__(self, base_url: str, connect_s: float, max_idle: int = 256) -> None:
        self.origin = Origin.parse(base_url)
        self.connect_s = connect_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context() if self.origin.scheme == "https" else None

    def head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        """The request line and headers, for `path` below the base URL's path."""
        lines = [f"{method} {self.origin.path}/{path} HTTP/1.1", f"Host: {self.origin.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(self, head: bytes, body: bytes, read_s: float) -> Response:
        """Send a request (from `head()`) and wait for the response's status and headers.

        A kept-alive connection the server closed while idle fails before any byte of the
        response: the request is then sent once more, on a new connection."""
        for fresh in (False, True):
            conn, reused = await self._acquire(fresh)
            try:
                conn.start(head + body)
                while not conn.head_done:
                    await conn.wait(read_s)
            except ConnectionError:
                conn.close()
                if reused and not conn.received and not fresh:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, conn, read_s)
        raise AssertionError("unreachable")

    async def _acquire(self, fresh: bool) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed:
                return conn, True
        loop = asyncio.get_running_loop()
        o = self.origin
        try:
            async with asyncio.timeout(self.connect_s):
                _, conn = await loop.create_connection(
                    _Connection, o.host, o.port, ssl=self._ssl,
                    server_hostname=o.host if self._ssl else None,
                )  # fmt: skip
        except TimeoutError:
            raise TimeoutError(
                f"connecting to {o.host}:{o.port} took over {self.connect_s:g} s"
            ) from None
        return conn, False

    def release(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    def __repr__(self) -> str:
        return f"Client({self.origin.scheme}://{self.origin.host_header}{self.origin.path})"
