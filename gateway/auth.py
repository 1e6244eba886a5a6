"""Who is calling: a Frugal key from `Authorization: Bearer`, or the anonymous team."""

from gateway.errors import AuthenticationFailed
from gateway.keys import Principal, key_id_of
from gateway.runtime import Runtime


def authenticate(rt: Runtime, header: str | None) -> Principal:
    """`header` is the request's Authorization header, if any."""
    scheme, _, key = (header or "").partition(" ")
    anonymous = rt.settings.auth.anonymous_team
    if anonymous and key_id_of(key.strip()) is None:
        # Anonymous mode (loopback only): clients that must send some key (the openai SDK
        # does) may send any non-Frugal string; a Frugal key is still checked.
        return Principal(anonymous, None)
    if header is None:
        raise AuthenticationFailed("Missing API key: send `Authorization: Bearer <key>`.")
    principal = rt.keys.verify(key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise AuthenticationFailed("Invalid API key.")
    return principal
