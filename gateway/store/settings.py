"""The store's settings (`store:` in the configuration): the Redis client's timeout and TLS for
`rediss://` URLs. The URL itself is the top-level `redis_url` (`FRUGAL_REDIS_URL`)."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RedisTLS(BaseModel):
    """TLS options for a `rediss://` URL (ignored for `redis://` and `unix://`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None  # CA bundle (PEM) that signed the server's certificate
    cert_file: Path | None = None  # client certificate (PEM) when the server asks for one
    key_file: Path | None = None  # its private key (PEM); default: inside cert_file
    verify: bool = True  # check the server's certificate chain (false: encryption only)
    check_hostname: bool = True  # the certificate must name the URL's host (or server_name)
    server_name: str | None = None  # SNI and the name to check, when not the URL's host


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # One command's reply (and a connection) must arrive within this; else the store counts as
    # down and `budget.on_store_error` applies.
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    tls: RedisTLS = RedisTLS()
