"""Who is calling: a Frugal key from `Authorization: Bearer`, or the anonymous team (only for
a caller on loopback, decided per request from the connection: see `gateway.peer`)."""

from collections.abc import Mapping
from typing import Any

from gateway.errors import AuthenticationFailed
from gateway.keys import Principal, key_id_of
from gateway.peer import is_local
from gateway.runtime import Runtime


def authenticate(rt: Runtime, header: str | None, scope: Mapping[str, Any]) -> Principal:
    """`header` is the request's Authorization header, if any; `scope` its ASGI scope (the
    socket it came in on, its peer and its headers)."""
    scheme, _, key = (header or "").partition(" ")
    anonymous = rt.settings.auth.anonymous_team
    if (
        anonymous
        and key_id_of(key.strip()) is None
        and is_local(scope, rt.settings.server.trusted_proxies)
    ):
        # Anonymous mode (loopback only): clients that must send some key (the openai SDK
        # does) may send any non-Frugal string; a Frugal key is still checked.
        return Principal(anonymous, None)
    if header is None:
        raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <key>`.")
    principal = rt.keys.verify(key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise AuthenticationFailed("Invalid API key.")
    return principal
