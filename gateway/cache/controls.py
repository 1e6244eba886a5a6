"""What the client asked of the cache: `Cache-Control: no-cache` (do not answer from the cache;
the fresh answer may be stored), `Cache-Control: no-store` or `x-frugal-cache: bypass` (neither
read nor write)."""

from collections.abc import Mapping


def directives(headers: Mapping[str, str]) -> tuple[bool, bool]:
    """(may read, may write) for a request with these headers."""
    if headers.get("x-frugal-cache", "").strip().lower() == "bypass":
        return False, False
    tokens = {t.strip().split("=")[0].lower() for t in headers.get("cache-control", "").split(",")}
    if "no-store" in tokens:
        return False, False
    if "no-cache" in tokens:
        return False, True
    return True, True
