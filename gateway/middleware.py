"""Request ids: a sane `x-request-id` from the client, or a new one, echoed on every response
and available to log lines through a context variable."""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def current_request_id() -> str:
    return _request_id.get()


def request_id_from(header: str | None) -> str:
    """The client's id when it is sane, else 32 random hex digits (as a uuid4's hex)."""
    if header and _VALID.match(header):
        return header
    return os.urandom(16).hex()


@contextmanager
def use_request_id(rid: str) -> Iterator[None]:
    token = _request_id.set(rid)
    try:
        yield
    finally:
        _request_id.reset(token)


class RequestIdMiddleware:
    """Plain ASGI middleware (keeps contextvars, passes SSE through chunk by chunk)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                header = v.decode("latin-1")
                break
        rid = request_id_from(header)
        raw = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", raw))
                message["headers"] = headers
            await send(message)

        with use_request_id(rid):
            await self.app(scope, receive, send_with_id)
