"""How the upstream client leaves the machine: which proxy (the standard `HTTPS_PROXY`,
`HTTP_PROXY`, `NO_PROXY` variables, read once at start-up), which TLS context (a model's own CA
bundle and client certificate for mTLS), and the `CONNECT` tunnel through a proxy.

The proxy rules are the ones curl, requests, httpx and aiohttp apply (Python's own
`urllib.request.getproxies_environment` and `proxy_bypass_environment` read them), plus Go's
special case: loopback hosts (`localhost`, 127.0.0.0/8, ::1) never go through a proxy, so a local
llama-server keeps working on a machine whose environment names a corporate proxy.
Only `http://` proxies are supported (as with most corporate proxies: the tunnel to an https
origin is still end-to-end TLS); any other scheme is a configuration error at start-up.
"""

import asyncio
import base64
import ipaddress
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

_MAX_CONNECT_REPLY = 16 * 1024


class ProxyError(ConnectionError):
    """The proxy refused or failed the tunnel (nothing reached the upstream)."""


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from the URL's user:password

    @classmethod
    def parse(cls, url: str) -> "Proxy":
        u = urlsplit(url if "://" in url else f"http://{url}")
        if u.scheme != "http" or not u.hostname:
            raise ValueError(
                f"unsupported proxy {u.scheme}://{u.hostname or ''} (only http:// proxies)"
            )
        auth = None
        if u.username is not None:
            pair = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            auth = "Basic " + base64.b64encode(pair).decode("ascii")
        return cls(u.hostname, u.port or 80, auth)

    def __repr__(self) -> str:  # never the credentials
        return f"Proxy({self.host}:{self.port})"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def proxy_for(scheme: str, host: str, port: int) -> Proxy | None:
    """The proxy the environment names for this origin, or None (direct)."""
    if is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url or ("no" in proxies and _bypassed(host, port, proxies)):
        return None
    return Proxy.parse(url)


def _bypassed(host: str, port: int, proxies: dict[str, str]) -> bool:
    # urllib matches the host and `host:port`, and handles `*`, leading dots and suffixes
    target = host if ":" in host else f"{host}:{port}"
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    return bool(bypass(target, proxies))


def tls_context(
    ca_bundle: str | None = None, client_cert: str | None = None, client_key: str | None = None
) -> ssl.SSLContext:
    """Certificates verified against `ca_bundle` (instead of the system's CAs) when given;
    `client_cert` (+ `client_key`, unless the key is in the same PEM) presented for mTLS.
    Raises OSError / ssl.SSLError when a file is missing or not a certificate."""
    ctx = ssl.create_default_context(cafile=ca_bundle)
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


class _TunnelReply(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT (a head only) and nothing after it."""

    def __init__(self) -> None:
        self.buf = b""
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if self.done.done():
            return
        if end >= 0:
            self.done.set_result(self.buf[: end + 4])
        elif len(self.buf) > _MAX_CONNECT_REPLY:
            self.done.set_exception(ProxyError("the proxy sent an oversized reply to CONNECT"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ProxyError(f"the proxy closed the tunnel ({exc or 'EOF'})"))


async def open_tunnel(
    proxy: Proxy, authority: str, protocol: asyncio.Protocol, ctx: ssl.SSLContext, server: str
) -> asyncio.Transport:
    """A TLS transport to `authority` (host:port) through `proxy`, speaking to `protocol`."""
    loop = asyncio.get_running_loop()
    raw, reply = await loop.create_connection(_TunnelReply, proxy.host, proxy.port)
    try:
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        raw.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await reply.done
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1][:1] != b"2":
            line = head.split(b"\r\n", 1)[0][:200].decode("latin-1")
            raise ProxyError(f"the proxy refused CONNECT {authority}: {line}")
        if len(reply.buf) > len(head):
            raise ProxyError("the proxy sent bytes before the TLS handshake")
        tls = await loop.start_tls(raw, protocol, ctx, server_hostname=server)
    except BaseException:
        raw.abort()
        raise
    if tls is None:  # only when the loop has no TLS support
        raise ProxyError("TLS over the proxy tunnel is not supported by this event loop")
    return tls
