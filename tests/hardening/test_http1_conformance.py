"""RFC 9112 / RFC 9110 client behaviour of gateway/providers/http1.py, against raw asyncio
servers that send exactly the bytes each test names.

What a client owes the specs, one test each: interim 1xx responses skipped and 101 refused
(RFC 9110 §15.2), `Connection: close` and HTTP/1.0 without keep-alive end reuse (RFC 9112 §9.3),
chunked bodies with extensions and trailers (§7.1), 204 and 304 without a body even with a
Content-Length (§6.3), Content-Length with Transfer-Encoding or two different lengths refused
(§6.3, request smuggling), a body without a length ending at close (§6.3 rule 8), no HEAD
(its response's body cannot be framed by this parser), limits on the head and the body, a
deadline on the whole response, and a POST never sent twice (§9.3.1). Proxies (absolute-form,
CONNECT) are in test_egress_proxy.py.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.providers.http1 import Client, Limits, NotSent, ProtocolError, TooLarge

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sized(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


class Raw:
    """A server whose connections each run `handler`; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Handler], Awaitable[Raw]]]:
    started: list[Raw] = []

    async def start(handler: Handler) -> Raw:
        r = Raw(handler)
        r.server = await asyncio.start_server(r._run, "127.0.0.1", 0)
        started.append(r)
        return r

    yield start
    for r in started:
        assert r.server is not None
        r.server.close()


def replies(*answers: bytes) -> Handler:
    """Answer the n-th request on each connection with answers[n] (then keep answering the
    last one)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await read_request(reader)
            writer.write(answers[min(n, len(answers) - 1)])
            await writer.drain()
            n += 1

    return handler


async def post(c: Client, body: bytes = b"{}", read_s: float = 2.0, **kw: float) -> bytes:
    resp = await c.request(c.head("POST", "chat/completions", {}, len(body)), body, read_s, **kw)
    assert resp.status == 200, resp.status
    return await resp.read()


# --- interim responses (RFC 9110 §15.2) ----------------------------------------------------


async def test_interim_responses_are_skipped_and_the_connection_stays_in_step(raw) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 #3: a 103 or 100 before the answer was taken as the answer, and the real one
    was read by the next request on the connection (possibly another team's)."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    count = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        while True:
            await read_request(reader)
            count += 1
            writer.write(early + cont + sized(b'{"n":%d}' % count))
            await writer.drain()

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    assert await post(c) == b'{"n":1}'
    assert await post(c) == b'{"n":2}'
    assert await post(c) == b'{"n":3}'
    assert s.connections == 1  # one connection, each answer to its own request
    c.close()


async def test_interim_responses_split_across_reads(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for piece in (b"HTTP/1.1 10", b"3 Early\r\nLink: <", b"/a>\r\n\r\nHTTP/1.1 200 OK\r\n",
                      b"Content-Length: 2\r\n\r\nok"):  # fmt: skip
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        await reader.read()

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    resp = await c.request(c.head("POST", "x", {}, 0), b"", 2.0)
    assert resp.status == 200 and dict(resp.headers) == {b"content-length": b"2"}
    assert await resp.read() == b"ok"
    c.close()


async def test_101_switching_protocols_is_an_error(raw) -> None:  # type: ignore[no-untyped-def]
    s = await raw(replies(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                          b"Connection: Upgrade\r\n\r\n"))  # fmt: skip
    c = Client(s.url(), 1.0)
    with pytest.raises(ProtocolError):
        await post(c)
    assert not c._idle
    c.close()


async def test_endless_interim_responses_hit_the_head_limit(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        while True:
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 50)
            await writer.drain()
            await asyncio.sleep(0.001)

    s = await raw(handler)
    c = Client(s.url(), 1.0, limits=Limits(max_header_bytes=4096))
    with pytest.raises(TooLarge):
        await post(c)
    c.close()


# --- connection management (RFC 9112 §9) -------------------------------------------------


async def test_connection_close_and_http10_end_reuse(raw) -> None:  # type: ignore[no-untyped-def]
    for answer in (sized(b"a", b"Connection: close\r\n"),
                   b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na"):  # fmt: skip
        s = await raw(replies(answer))
        c = Client(s.url(), 1.0)
        assert await post(c) == b"a"
        assert not c._idle
        assert await post(c) == b"a"
        assert s.connections == 2
        c.close()


async def test_http10_keep_alive_is_reused(raw) -> None:  # type: ignore[no-untyped-def]
    s = await raw(
        replies(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na")
    )
    c = Client(s.url(), 1.0)
    assert await post(c) == b"a" and await post(c) == b"a"
    assert s.connections == 1
    c.close()


async def test_a_post_is_not_resent_when_the_connection_drops_before_the_answer(raw) -> None:  # type: ignore[no-untyped-def]
    """RFC 9112 §9.3.1: a non-idempotent request is not retried automatically. The server
    took the request and died; a second copy could be paid twice."""
    seen = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        await read_request(reader)
        seen += 1
        if seen == 1:
            writer.write(sized(b"1"))
            await writer.drain()
            await read_request(reader)
            seen += 1
        # the second request on the connection (and any later one) gets no answer

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    assert await post(c) == b"1"
    with pytest.raises(ConnectionError) as e:
        await post(c)
    assert not isinstance(e.value, NotSent)
    assert seen == 2  # exactly one copy of the second POST


async def test_a_closed_idle_connection_is_not_used(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(sized(b"x"))
        await writer.drain()  # then close: an idle timeout of 0

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    assert await post(c) == b"x"
    await asyncio.sleep(0.05)  # the close has arrived: the connection is known dead
    assert await post(c) == b"x"
    assert s.connections == 2
    c.close()


async def test_nothing_sent_is_not_sent() -> None:
    c = Client("http://127.0.0.1:9/v1", 0.5)  # discard port: nothing listens
    with pytest.raises(NotSent):
        await post(c)


# --- message bodies (RFC 9112 §6, §7) ------------------------------------------------------


async def test_chunked_with_extensions_and_trailers(raw) -> None:  # type: ignore[no-untyped-def]
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
               b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
               b"0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n")  # fmt: skip
    s = await raw(replies(chunked, sized(b"next")))
    c = Client(s.url(), 1.0)
    resp = await c.request(c.head("POST", "x", {}, 0), b"", 2.0)
    assert await resp.read() == b"Wikipedia in\r\n\r\nchunks."
    assert b"x-checksum" not in dict(resp.headers)  # trailers are read and dropped
    assert await post(c) == b"next"  # the trailer did not leak into the next response
    assert s.connections == 1
    c.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_for_204_and_304_even_with_a_length(raw, status: int) -> None:  # type: ignore[no-untyped-def]
    first = b"HTTP/1.1 %d X\r\nContent-Length: 7\r\n\r\n" % status
    s = await raw(replies(first, sized(b"after")))
    c = Client(s.url(), 1.0)
    resp = await c.request(c.head("POST", "x", {}, 0), b"", 2.0)
    assert resp.status == status and await resp.read() == b""
    assert await post(c) == b"after"
    assert s.connections == 1
    c.close()


async def test_a_body_without_length_ends_at_close(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"part two")
        await writer.drain()

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    assert await post(c) == b"part one, part two"
    assert not c._idle
    c.close()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",  # obsolete line folding
        b"HTTP/1.1 200 OK\r\nBad Header: 1\r\n\r\n",
    ],
)
async def test_ambiguous_framing_is_refused(raw, head: bytes) -> None:  # type: ignore[no-untyped-def]
    s = await raw(replies(head + b"2\r\nok\r\n0\r\n\r\n"))
    c = Client(s.url(), 1.0)
    with pytest.raises(ProtocolError):
        await post(c)
    assert not c._idle
    c.close()


async def test_head_is_not_sent() -> None:
    c = Client("http://127.0.0.1:9/v1", 1.0)
    with pytest.raises(ValueError, match="HEAD"):
        c.head("HEAD", "models", {}, None)


# --- limits (issue 12 #11) -----------------------------------------------------------------


@pytest.mark.parametrize("framing", ["sized", "chunked", "close"])
async def test_a_body_over_the_limit_is_refused(raw, framing: str) -> None:  # type: ignore[no-untyped-def]
    big = b"x" * 10_000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if framing == "sized":
            writer.write(sized(big))
        elif framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(10):
                writer.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + big)
        await writer.drain()
        await reader.read()

    s = await raw(handler)
    c = Client(s.url(), 1.0, limits=Limits(max_response_bytes=4096))
    with pytest.raises(TooLarge):
        await post(c)
    assert not c._idle
    c.close()


async def test_a_body_at_the_limit_is_read(raw) -> None:  # type: ignore[no-untyped-def]
    s = await raw(replies(sized(b"z" * 4096)))
    c = Client(s.url(), 1.0, limits=Limits(max_response_bytes=4096))
    assert len(await post(c)) == 4096
    c.close()


@pytest.mark.parametrize("shape", ["many", "long", "endless", "trailer"])
async def test_heads_over_the_limits_are_refused(raw, shape: str) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if shape == "many":
            writer.write(
                b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"Content-Length: 0\r\n\r\n"
            )
        elif shape == "long":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 100_000 + b"\r\n\r\n")
        elif shape == "trailer":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
            writer.write(b"X-Trailer: " + b"t" * 100_000 + b"\r\n\r\n")
        else:  # a header that never ends
            writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            while True:
                writer.write(b"e" * 1000)
                await writer.drain()
                await asyncio.sleep(0.001)
        await writer.drain()
        await reader.read()

    s = await raw(handler)
    c = Client(s.url(), 1.0, limits=Limits(max_header_bytes=8192, max_headers=50))
    with pytest.raises(TooLarge):
        resp = await c.request(c.head("POST", "x", {}, 0), b"", 5.0)
        await resp.read()
    c.close()


async def test_a_trickling_upstream_ends_at_the_deadline(raw) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 #11: `read_s` bounds each wait, so a byte every 50 ms (or every second) held
    a request forever; the attempt's deadline ends it."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while True:
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="deadline"):
        await post(c, read_s=1.0, deadline=time.monotonic() + 0.5)
    assert time.monotonic() - t0 < 5.0  # generous: ends at 0.5 s, never at read_s x bytes
    assert not c._idle
    c.close()


async def test_a_trickling_head_ends_at_the_deadline(raw) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        while True:
            writer.write(b"HTTP/1.1 103 Early Hints\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    s = await raw(handler)
    c = Client(s.url(), 1.0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await post(c, read_s=1.0, deadline=time.monotonic() + 0.4)
    assert time.monotonic() - t0 < 5.0
    c.close()
