"""Anonymous mode serves keyless callers only on loopback, decided per request from the socket
the request came in on and its peer (and, behind a trusted proxy, its X-Forwarded-For), never
from the configured host (issue 12, problem 2)."""

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.auth import authenticate
from gateway.config import Settings
from gateway.errors import AuthenticationFailed
from gateway.keys import create_key, load_keys
from gateway.peer import client_address, is_local
from gateway.runtime import Runtime
from tests.conftest import model_cfg
from tests.support.servers import free_port

REMOTE = "203.0.113.7"
FREE = {"input_per_mtok": "0", "output_per_mtok": "0"}


def _settings(policies: Path, **server: Any) -> Settings:
    return Settings(
        models={"m": model_cfg("http://127.0.0.1:9/v1", "m", price=FREE)},
        policies_dir=policies,
        auth={"anonymous_team": "anon"},
        server=server,
    )


def _scope(
    client: str | None, server: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "client": (client, 50000) if client else None,
        "server": (server, 8080),
        "headers": raw,
    }


def _rt(settings: Settings) -> Runtime:
    keys = load_keys(settings.policies_dir)
    return cast(Runtime, SimpleNamespace(settings=settings, keys=keys))


def test_keyless_caller_on_loopback_is_anonymous(tmp_path: Path) -> None:
    rt = _rt(_settings(tmp_path))
    for peer in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        p = authenticate(rt, None, _scope(peer))
        assert p.team == "anon" and p.key_id is None
    assert authenticate(rt, "Bearer sk-anything", _scope("127.0.0.1")).team == "anon"


@pytest.mark.parametrize(
    "scope",
    [
        _scope(REMOTE),  # a remote peer
        _scope("192.0.2.2", server="192.0.2.2"),  # the host's own non-loopback address
        _scope("127.0.0.1", server="192.0.2.2"),  # a socket not bound on loopback
        _scope(None),  # no peer known (e.g. a Unix socket)
        # a loopback proxy nobody said to trust relayed it: the real client is unknown
        _scope("127.0.0.1", headers={"x-forwarded-for": "127.0.0.1"}),
        _scope("127.0.0.1", headers={"forwarded": "for=127.0.0.1"}),
        # a remote client cannot make itself local by sending the header
        _scope(REMOTE, headers={"x-forwarded-for": "127.0.0.1"}),
    ],
)
def test_keyless_caller_elsewhere_gets_401(tmp_path: Path, scope: dict[str, Any]) -> None:
    rt = _rt(_settings(tmp_path))
    with pytest.raises(AuthenticationFailed) as e:
        authenticate(rt, None, scope)
    assert e.value.status == 401
    with pytest.raises(AuthenticationFailed):
        authenticate(rt, "Bearer sk-anything", scope)


def test_a_frugal_key_works_from_anywhere(tmp_path: Path) -> None:
    key = create_key(tmp_path, "research")
    rt = _rt(_settings(tmp_path))
    assert authenticate(rt, f"Bearer {key}", _scope(REMOTE)).team == "research"
    with pytest.raises(AuthenticationFailed):  # a wrong Frugal key is never anonymous
        authenticate(rt, f"Bearer {key[:-1]}x", _scope("127.0.0.1"))


def test_x_forwarded_for_counts_only_from_trusted_proxies() -> None:
    from ipaddress import ip_address, ip_network

    trusted = (ip_network("10.0.0.0/8"),)
    # From a trusted proxy: the first untrusted hop from the right is the client.
    fwd = {"x-forwarded-for": f"127.0.0.1, {REMOTE}, 10.1.1.1"}
    assert client_address(_scope("10.0.0.5", headers=fwd), trusted) == ip_address(REMOTE)
    fwd = {"x-forwarded-for": "127.0.0.1"}
    assert client_address(_scope("10.0.0.5", headers=fwd), trusted) == ip_address("127.0.0.1")
    assert client_address(_scope("10.0.0.5"), trusted) == ip_address("10.0.0.5")
    bad = {"x-forwarded-for": "unknown"}
    assert client_address(_scope("10.0.0.5", headers=bad), trusted) is None
    # From an untrusted peer the header is not believed.
    assert client_address(_scope(REMOTE, headers=fwd), trusted) is None
    assert client_address(_scope(REMOTE), trusted) == ip_address(REMOTE)
    # A trusted loopback proxy forwarding a loopback caller: local; a remote one: not.
    lo = (ip_network("127.0.0.1/32"),)
    assert is_local(_scope("127.0.0.1", headers={"x-forwarded-for": "::1"}), lo)
    assert not is_local(_scope("127.0.0.1", headers={"x-forwarded-for": REMOTE}), lo)
    assert not is_local(_scope("127.0.0.1", headers={"x-forwarded-for": "127.0.0.1"}), ())
    only_rfc7239 = {"forwarded": f"for={REMOTE}"}  # not read: the client is unknown
    assert client_address(_scope("127.0.0.1", headers=only_rfc7239), lo) is None


def test_trusted_proxies_are_validated_cidrs(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="trusted_proxies"):
        _settings(tmp_path, trusted_proxies=["not-a-network"])


# --- a real server -------------------------------------------------------------------------


class _Served:
    def __init__(self, settings: Settings, host: str) -> None:
        self.port = free_port()
        cfg = uvicorn.Config(create_app(settings), host=host, port=self.port,
                             log_level="warning", access_log=False, lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "_Served":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no gateway"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def _own_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        addr: str = s.getsockname()[0]
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def _get(host: str, port: int, source: str | None = None, **headers: str) -> int:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.get(f"http://{host}:{port}/v1/models", headers=headers).status_code


def _post(host: str, port: int, source: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=10) as c:
        return c.post(f"http://{host}:{port}/v1/chat/completions", json=body).status_code


def test_bound_on_all_interfaces_serves_keyless_callers_only_from_loopback(
    tmp_path: Path,
) -> None:
    """The bug: the configuration says 127.0.0.1, the socket is bound on 0.0.0.0 (as with
    `frugal serve --host 0.0.0.0`), and every peer was served without a key."""
    own = _own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback address to call from")
    with _Served(_settings(tmp_path), "0.0.0.0") as gw:
        assert _get("127.0.0.1", gw.port) == 200
        assert _get(own, gw.port, source=own) == 401
        assert _post(own, gw.port, source=own) == 401  # the generation endpoints too


def test_real_server_x_forwarded_for_from_trusted_and_untrusted_proxies(tmp_path: Path) -> None:
    settings = _settings(tmp_path, trusted_proxies=["127.0.0.2/32"])
    with _Served(settings, "127.0.0.1") as gw:
        p = gw.port
        assert _get("127.0.0.1", p, source="127.0.0.2") == 200  # the proxy's own request
        assert _get("127.0.0.1", p, source="127.0.0.2", **{"x-forwarded-for": "::1"}) == 200
        assert _get("127.0.0.1", p, source="127.0.0.2", **{"x-forwarded-for": REMOTE}) == 401
        spoof = {"x-forwarded-for": f"127.0.0.1, {REMOTE}"}
        assert _get("127.0.0.1", p, source="127.0.0.2", **spoof) == 401
        # 127.0.0.1 is not a trusted proxy: what it forwards has an unknown client
        assert _get("127.0.0.1", p, source="127.0.0.1", **{"x-forwarded-for": "::1"}) == 401
        assert _get("127.0.0.1", p, source="127.0.0.1") == 200
