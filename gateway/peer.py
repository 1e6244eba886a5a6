"""Who is on the other end of a request: the peer of the connection, or, when that peer is one of
`server.trusted_proxies`, the client its `X-Forwarded-For` names. Anonymous mode serves only a
caller found here to be on loopback, over a socket bound on loopback.

`X-Forwarded-For` is read right to left, skipping trusted proxies: the first address that is not
a trusted proxy is the client (an untrusted hop may have written anything to its left). A request
from an untrusted peer that carries a forwarding header was relayed by a proxy we were not told to
trust, so its client is unknown, and never local. Only `X-Forwarded-For` is read (not RFC 7239's
`Forwarded`: a trusted proxy that sends only that one leaves the client unknown too)."""

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
_FORWARDING = (b"x-forwarded-for", b"forwarded")


def parse(host: object) -> Address | None:
    if not isinstance(host, str):
        return None
    try:
        addr = ip_address(host.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, proxies: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in proxies)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops += value.decode("latin-1").split(",")
    return hops


def client_address(scope: Mapping[str, Any], proxies: Sequence[Network]) -> Address | None:
    """The caller's address, or None when it cannot be known."""
    client = scope.get("client")
    peer = parse(client[0]) if client else None
    if peer is None:
        return None
    headers = scope.get("headers") or ()
    if not _trusted(peer, proxies):
        if any(name.lower() in _FORWARDING for name, _ in headers):
            return None  # relayed by a proxy nobody said to trust: the client is unknown
        return peer
    hops = _forwarded_for(headers)
    if not hops and any(name.lower() == b"forwarded" for name, _ in headers):
        return None  # RFC 7239 `Forwarded` is not read: its client is unknown here
    found = peer
    for hop in reversed(hops):
        addr = parse(hop)
        if addr is None:
            return None  # a hop we cannot read: nothing to its left can be believed
        if not _trusted(addr, proxies):
            return addr
        found = addr
    return found


def is_local(scope: Mapping[str, Any], proxies: Sequence[Network]) -> bool:
    """True when the socket the request came in on and its caller are both on loopback."""
    server = scope.get("server")
    bound = parse(server[0]) if server else None
    if bound is None or not bound.is_loopback:
        return False
    caller = client_address(scope, proxies)
    return caller is not None and caller.is_loopback
