"""Egress on a corporate network (issue 12 #13): every path that leaves the gateway goes
through `HTTPS_PROXY` / `HTTP_PROXY` and skips it for `NO_PROXY`, and a model can have its
own CA bundle and client certificate (mTLS).

The proxy is real and small (an asyncio server on 127.0.0.1 that answers `CONNECT` with a
tunnel and forwards absolute-form requests) and records what it carried. Upstreams are named
`*.test`, a name no resolver knows: only the proxy (which maps every name to 127.0.0.1) can
reach them, so an answer proves the proxy was used. The TLS upstream has a self-signed
certificate for `upstream.test`, trusted only through the model's `ca_bundle`.
"""

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, ModelConfig
from gateway.errors import UpstreamError
from gateway.providers.base import Endpoint
from gateway.providers.egress import Proxy, proxy_for
from gateway.providers.http1 import Client, NotSent
from gateway.providers.openai_compat import OpenAICompatProvider, client_for
from gateway.providers.registry import build_provider, check_egress
from tests.conftest import model_cfg

pytestmark = pytest.mark.anyio
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = (b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":'
          b'"assistant","content":"via"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
          b'"completion_tokens":1,"total_tokens":2}}')  # fmt: skip
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "https_proxy", "http_proxy",
              "no_proxy", "all_proxy")  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    server_cert: Path  # self-signed for upstream.test: also the CA bundle that trusts it
    server_key: Path
    client_cert: Path  # self-signed: the server trusts exactly this one
    client_key: Path


def _self_signed(tmp: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    make = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}",
            "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(make, check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make test certificates")
    tmp = tmp_path_factory.mktemp("certs")
    server = _self_signed(tmp, "upstream.test", "DNS:upstream.test")
    client = _self_signed(tmp, "frugal-client", "DNS:frugal-client")
    return Certs(*server, *client)


# --- a real proxy and upstreams ------------------------------------------------------------


class RecordingProxy:
    """CONNECT tunnels and absolute-form forwarding; every name resolves to 127.0.0.1."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.seen: list[bytes] = []  # the request head of each proxied exchange
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    @property
    def lines(self) -> list[str]:
        return [h.split(b"\r\n", 1)[0].decode() for h in self.seen]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.seen.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if self.refuse:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
                await writer.drain()
                return
            if method == "CONNECT":
                port = int(target.rsplit(":", 1)[1])
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:  # absolute-form: http://host:port/path
                hostport = target.split("/", 3)[2]
                port = int(hostport.rsplit(":", 1)[1]) if ":" in hostport else 80
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
                up_w.write(head)
            await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()


class Upstream:
    """An OpenAI-shaped upstream that records each request head and the client certificate."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.peer_certs: list[Any] = []
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer_certs.append(writer.get_extra_info("peercert"))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[RecordingProxy]:
    p = RecordingProxy()
    p.server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    yield p
    p.server.close()


async def start_upstream(tls: ssl.SSLContext | None = None) -> Upstream:
    u = Upstream()
    u.server = await asyncio.start_server(u.handle, "127.0.0.1", 0, ssl=tls)
    return u


def server_tls(certs: Certs, require_client: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(certs.client_cert)
    return ctx


def openai_model(url: str, **kw: Any) -> ModelConfig:
    return ModelConfig(**model_cfg(url, "m", **kw))


# --- the hot-path client -------------------------------------------------------------------


async def test_https_through_connect_with_the_models_ca_bundle_and_client_certificate(
    proxy: RecordingProxy, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await start_upstream(server_tls(certs, require_client=True))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    tls = {"ca_bundle": str(certs.server_cert), "client_cert": str(certs.client_cert),
           "client_key": str(certs.client_key)}  # fmt: skip
    cfg = openai_model(f"https://upstream.test:{up.port}/v1", **tls)
    p = OpenAICompatProvider("m", cfg, "sk-secret")
    for _ in range(2):
        got = await p.complete(Endpoint.chat, BODY)
        assert got.body["choices"][0]["message"]["content"] == "via"
    assert proxy.lines == [f"CONNECT upstream.test:{up.port} HTTP/1.1"]  # one tunnel, reused
    assert b"sk-secret" not in proxy.seen[0]  # the key travels inside the TLS tunnel only
    assert up.heads[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: upstream.test:")
    assert up.peer_certs[0]["subject"] == ((("commonName", "frugal-client"),),)  # mTLS
    await p.close()
    assert up.server is not None
    up.server.close()


async def test_mtls_without_the_client_certificate_fails(
    proxy: RecordingProxy, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await start_upstream(server_tls(certs, require_client=True))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    p = OpenAICompatProvider(
        "m", openai_model(f"https://upstream.test:{up.port}/v1", ca_bundle=str(certs.server_cert)),
        None,
    )  # fmt: skip
    with pytest.raises(UpstreamError):
        await p.complete(Endpoint.chat, BODY)
    await p.close()
    assert up.server is not None
    up.server.close()


async def test_without_the_ca_bundle_the_certificate_is_not_trusted(
    proxy: RecordingProxy, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await start_upstream(server_tls(certs, require_client=False))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    c = Client(f"https://upstream.test:{up.port}/v1", 2.0)
    with pytest.raises(NotSent) as e:
        await c.request(c.head("POST", "chat/completions", {}, 2), b"{}", 2.0)
    assert isinstance(e.value.__cause__, ssl.SSLCertVerificationError)
    assert up.server is not None
    up.server.close()


async def test_http_through_the_proxy_in_absolute_form_with_proxy_credentials(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await start_upstream()
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://u%40corp:p%3Ass@"))
    p = OpenAICompatProvider("m", openai_model(f"http://upstream.test:{up.port}/v1"), None)
    got = await p.complete(Endpoint.chat, BODY)
    assert got.body["choices"][0]["message"]["content"] == "via"
    assert proxy.lines == [f"POST http://upstream.test:{up.port}/v1/chat/completions HTTP/1.1"]
    # Basic base64("u@corp:p:ss")
    assert b"\r\nProxy-Authorization: Basic dUBjb3JwOnA6c3M=\r\n" in proxy.seen[0]
    assert b"\r\nHost: upstream.test:" in proxy.seen[0]
    await p.close()
    assert up.server is not None
    up.server.close()


async def test_no_proxy_and_loopback_go_direct(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", ".internal.example,upstream.test")
    assert proxy_for("https", "upstream.test", 443) is None
    assert proxy_for("https", "llm.internal.example", 443) is None
    assert proxy_for("https", "api.openai.com", 443) == Proxy.parse(proxy.url)
    assert proxy_for("http", "127.0.0.1", 8081) is None  # a local llama-server: never proxied
    assert proxy_for("http", "localhost", 8081) is None
    assert proxy_for("http", "::1", 8081) is None
    up = await start_upstream()
    direct = OpenAICompatProvider("m", openai_model(f"http://127.0.0.1:{up.port}/v1"), None)
    await direct.complete(Endpoint.chat, BODY)
    bypassed = Client(f"http://upstream.test:{up.port}/v1", 1.0)
    assert bypassed.proxy is None
    with pytest.raises(NotSent):  # went direct: the name does not resolve without the proxy
        await bypassed.request(bypassed.head("POST", "x", {}, 0), b"", 1.0)
    assert proxy.seen == []  # nothing went through the proxy
    await direct.close()
    assert up.server is not None
    up.server.close()


async def test_a_proxy_that_refuses_the_tunnel_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    p = RecordingProxy(refuse=True)
    p.server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    monkeypatch.setenv("HTTPS_PROXY", p.url)
    c = Client("https://upstream.test:443/v1", 2.0)
    with pytest.raises(NotSent, match="407"):
        await c.request(c.head("POST", "x", {}, 0), b"", 2.0)
    p.server.close()


def test_unusable_egress_settings_are_start_up_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://10.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"models\.m: invalid proxy"):
        check_egress({"m": openai_model("https://api.example.com/v1")})
    monkeypatch.delenv("HTTPS_PROXY")
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"models\.m\.ca_bundle"):
        client_for("m", openai_model("https://api.example.com/v1", ca_bundle=missing))
    not_a_cert = tmp_path / "x.pem"
    not_a_cert.write_text("hello")
    with pytest.raises(ConfigError, match="client_cert"):
        build_provider("m", openai_model("https://api.example.com/v1",
                                         client_cert=str(not_a_cert)))  # fmt: skip
    with pytest.raises(ValueError, match="client_key needs client_cert"):
        openai_model("https://api.example.com/v1", client_key=str(not_a_cert))


# --- litellm --------------------------------------------------------------------------------


async def test_litellm_goes_through_the_proxy(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = await start_upstream()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("EGRESS_T_KEY", "sk-egress")
    cfg = ModelConfig(**model_cfg(f"http://upstream.test:{up.port}/v1", "openai/m",
                                  provider="litellm", api_key_env="EGRESS_T_KEY"))  # fmt: skip
    p = build_provider("m", cfg)
    got = await p.complete(Endpoint.chat, BODY)
    assert got.body["choices"][0]["message"]["content"] == "via"
    assert proxy.lines == [f"POST http://upstream.test:{up.port}/v1/chat/completions HTTP/1.1"]
    await p.close()
    assert up.server is not None
    up.server.close()


# --- budget alert webhooks ------------------------------------------------------------------


async def test_budget_webhooks_go_through_the_proxy_and_honour_no_proxy(
    proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.budget.alerts import Alerts
    from gateway.store.memory import MemoryStore

    hook = await start_upstream()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    alerts = Alerts(MemoryStore())
    status = await alerts.post(f"http://hooks.test:{hook.port}/budget", {"event": "x"})
    assert status == 200
    assert proxy.lines == [f"POST http://hooks.test:{hook.port}/budget HTTP/1.1"]
    await alerts.drain()
    monkeypatch.setenv("NO_PROXY", "hooks.test")
    alerts = Alerts(MemoryStore())
    with pytest.raises(OSError):  # direct: the name does not resolve
        await alerts.post(f"http://hooks.test:{hook.port}/budget", {"event": "x"})
    assert len(proxy.seen) == 1
    await alerts.drain()
    assert hook.server is not None
    hook.server.close()


def test_tls_files_on_a_litellm_model_are_refused_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="provider 'openai' only"):
        cfg = model_cfg("https://api.example.com/v1", "anthropic/claude", provider="litellm")
        ModelConfig(**cfg, ca_bundle=str(tmp_path / "ca.pem"))
