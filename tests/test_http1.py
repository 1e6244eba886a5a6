"""The upstream HTTP/1.1 client against a raw asyncio server that misbehaves on demand:
keep-alive reuse, chunked and sized bodies, a server that drops idle connections, slow and
silent servers, abandoned streams, and garbage instead of HTTP."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.providers.http1 import Client, NotSent, Origin, ProtocolError

pytestmark = pytest.mark.anyio

SIZED = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\ndata:\r\n6\r\n [1]\n\n\r\n0\r\n\r\n")  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    """Answers each request (head + Content-Length body) with `reply(n, head)`; None closes."""

    def __init__(self, reply: Callable[[int, bytes], bytes | None]) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                self.requests.append(head)
                out = self.reply(len(self.requests), head)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Callable[[int, bytes], bytes | None]], Server]]:
    servers: list[Server] = []

    async def start(reply: Callable[[int, bytes], bytes | None]) -> Server:
        s = Server(reply)
        s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in servers:
        assert s.server is not None
        s.server.close()


async def _post(c: Client, read_s: float = 2.0) -> bytes:
    resp = await c.request(c.head("POST", "chat/completions", {"X-A": "1"}, 2), b"{}", read_s)
    return await resp.read()


async def test_sized_and_chunked_bodies_on_one_kept_alive_connection(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(lambda n, h: SIZED if n % 2 else CHUNKED)
    c = Client(s.url, 1.0)
    assert await _post(c) == b'{"ok":true}'
    assert await _post(c) == b"data: [1]\n\n"
    assert await _post(c) == b'{"ok":true}'
    assert s.connections == 1
    assert s.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-A: 1" in s.requests[0] and b"Content-Length: 2" in s.requests[0]
    c.close()


def _drop_idle(c: Client) -> None:
    """The server side of every idle connection goes away without telling (an idle timeout
    racing our next request)."""
    for conn in c._idle:
        assert conn.transport is not None
        conn.transport.get_extra_info("socket").shutdown(0)


async def test_a_get_on_a_connection_the_server_dropped_while_idle_is_sent_again(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(lambda n, h: SIZED)
    c = Client(s.url, 1.0)
    assert await _post(c) == b'{"ok":true}'
    _drop_idle(c)
    s.reply = lambda n, h: None if n == 2 else SIZED
    resp = await c.request(c.head("GET", "models", {}, None), b"", 2.0)
    assert await resp.read() == b'{"ok":true}'
    assert [r.split(b" ")[0] for r in s.requests] == [b"POST", b"GET", b"GET"]
    c.close()


async def test_a_post_is_never_sent_twice(serve) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 #12: the server got the POST, then the connection failed before an answer;
    sending it again could pay for it twice. It surfaces as an error instead, not `NotSent`."""
    s = await serve(lambda n, h: SIZED)
    c = Client(s.url, 1.0)
    assert await _post(c) == b'{"ok":true}'
    _drop_idle(c)
    s.reply = lambda n, h: None if n == 2 else SIZED
    with pytest.raises(ConnectionError) as e:
        await _post(c)
    assert not isinstance(e.value, NotSent)
    assert len(s.requests) == 2  # the failed POST reached the server once, and only once
    assert await _post(c) == b'{"ok":true}'  # the next request gets a new connection
    c.close()


async def test_a_connection_idle_too_long_is_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(lambda n, h: SIZED)
    c = Client(s.url, 1.0, idle_s=0.05)
    assert await _post(c) == b'{"ok":true}'
    await asyncio.sleep(0.1)
    assert await _post(c) == b'{"ok":true}'
    assert s.connections == 2
    c.close()


async def test_connection_close_is_honoured(serve) -> None:  # type: ignore[no-untyped-def]
    closing = SIZED.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n", 1)
    s = await serve(lambda n, h: closing)
    c = Client(s.url, 1.0)
    assert await _post(c) == b'{"ok":true}'
    assert not c._idle
    c.close()


async def test_silence_is_a_timeout_and_garbage_a_protocol_error(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(lambda n, h: b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"partial')
    c = Client(s.url, 1.0)
    with pytest.raises(TimeoutError):
        await _post(c, read_s=0.2)
    s.reply = lambda n, h: b"SMTP ready\r\n\r\n"
    with pytest.raises(ProtocolError):
        await _post(c)
    s.reply = lambda n, h: None  # closes before answering
    with pytest.raises(ConnectionError):
        await _post(c)
    c.close()


async def test_a_body_that_ends_when_the_server_closes() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n\x7b\x7d")  # the head and the 2-byte body
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"a":1}')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = Client(f"http://127.0.0.1:{port}/v1", 1.0)
    assert await _post(c) == b'{"a":1}'
    assert not c._idle
    c.close()
    server.close()


async def test_an_abandoned_stream_closes_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(
        lambda n, h: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    c = Client(s.url, 1.0)
    resp = await c.request(c.head("POST", "x", {}, 0), b"", 1.0)
    async for chunk in resp.iter_chunks():
        assert chunk == b"abc"
        break
    resp.close()
    assert not c._idle  # the rest of that response would confuse the next request
    c.close()


async def test_closing_the_client_closes_a_connection_still_being_read(serve) -> None:  # type: ignore[no-untyped-def]
    s = await serve(
        lambda n, h: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    c = Client(s.url, 1.0)
    resp = await c.request(c.head("POST", "x", {}, 0), b"", 1.0)
    conn = resp._conn
    assert conn.transport is not None and not conn.transport.is_closing()
    c.close()  # shutdown while a stream is open: its socket must not wait for the collector
    assert conn.transport.is_closing()
    with pytest.raises((ProtocolError, OSError, TimeoutError)):
        await resp.read()
    assert not c._idle


async def test_unreachable_is_not_sent() -> None:
    c = Client("http://127.0.0.1:1/v1", 0.5)
    with pytest.raises(NotSent):
        await _post(c)


def test_origins() -> None:
    assert Origin.parse("https://api.openai.com/v1").host_header == "api.openai.com"
    assert Origin.parse("https://api.openai.com/v1").port == 443
    assert Origin.parse("http://[::1]:8080/").host_header == "[::1]:8080"
    assert Origin.parse("http://h/v1/").path == "/v1"
    with pytest.raises(ValueError, match="http"):
        Origin.parse("ftp://h")


async def test_tls_with_the_server_name_checked(
    serve, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(make, check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    s = Server(lambda n, h: SIZED)
    s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0, ssl=ctx)
    port = s.server.sockets[0].getsockname()[1]
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate
        c = Client(f"https://localhost:{port}/v1", 2.0)
        assert await _post(c) == b'{"ok":true}'
        assert await _post(c) == b'{"ok":true}'
        assert s.connections == 1
        c.close()
        wrong = Client(f"https://127.0.0.1:{port}/v1", 2.0)  # not the certificate's name
        with pytest.raises(NotSent) as e:
            await _post(wrong)
        assert isinstance(e.value.__cause__, ssl.SSLCertVerificationError)
    finally:
        s.server.close()
