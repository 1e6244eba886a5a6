"""OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp, Ollama, ...) without litellm on the
hot path, over the small HTTP/1.1 client in http1.py (chosen by measurement: httpx, then aiohttp,
cost several times more CPU per call; see the README's benchmark).

Errors follow resilience.py's rule: nothing sent (`NotSent`) or an error status other than 504
may be tried again; anything after the request was sent is `after_send()` (maybe billed)."""

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.capabilities import CONTEXT_EXCEEDED, exceeds_context
from gateway.config import ConfigError, ModelConfig
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.fault import stream_error_status
from gateway.providers.base import Completion, Endpoint
from gateway.providers.deadline import attempt_deadline
from gateway.providers.egress import tls_context
from gateway.providers.http1 import Client, Limits, NotSent, Response, TooLarge, header_safe
from gateway.telemetry.tracecontext import UPSTREAM_TRACEPARENT
from gateway.usage import usage_from

log = logging.getLogger("frugal.upstream")
_MAX_MESSAGE = 500


class OpenAICompatProvider:
    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        assert cfg.base_url is not None
        self.name = name
        self._client = client_for(name, cfg)
        self._read_s = cfg.timeouts.read_s
        self._total_s = cfg.timeouts.total_s
        self._max_line = cfg.limits.max_sse_line_bytes
        self._api_key = api_key
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "frugal"}  # fmt: skip
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        for k, v in self._headers.items():
            if not header_safe(v):  # a key with a trailing newline would split the header
                raise ConfigError(f"models.{name}: the {k} header holds a control character")

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        data = await self._post_json(endpoint, body)
        return Completion(data, usage_from(data))

    async def embed(self, body: dict[str, Any]) -> Completion:
        return await self.complete(Endpoint.embeddings, body)

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        resp = await self._post(endpoint, body)
        try:
            if resp.status >= 400:
                raise self._status_error(resp.status, await self._read(resp))
            done = False
            lines = Lines(self._max_line)
            async for piece in self._chunks(resp):
                for raw in lines.feed(piece):
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, `event:` lines
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    chunk = self._parse(payload)
                    if "error" in chunk and "choices" not in chunk:
                        raise UpstreamError(
                            f"model {self.name!r} sent an error mid-stream: {self._message(chunk)}",
                            model=self.name,
                            retryable=False,
                            upstream_status=stream_error_status(chunk),  # whose fault (fault.py)
                        ).after_send()
                    yield chunk
                if done:
                    break
                if lines.overlong:
                    raise self._overlong_line()
            if not done:
                raise self._incomplete_stream()
        finally:
            resp.close()

    def _overlong_line(self) -> UpstreamError:
        return UpstreamError(
            f"model {self.name!r} sent a stream line over {self._max_line} B "
            "(limits.max_sse_line_bytes)",
            model=self.name,
            retryable=False,
        ).after_send()

    def _incomplete_stream(self) -> UpstreamError:
        return UpstreamError(
            f"model {self.name!r} ended the stream before it was complete",
            model=self.name,
            retryable=False,
        ).after_send()

    async def ready(self) -> bool:
        try:
            head = self._client.head("GET", "models", self._headers, None)
            resp = await self._client.request(head, b"", 2.0, attempt_deadline(2.0))
            resp.close()
        except (TimeoutError, OSError):
            return False
        return resp.status < 500

    async def close(self) -> None:
        self._client.close()

    async def _post(self, endpoint: Endpoint, body: dict[str, Any]) -> Response:
        data = orjson.dumps(body)
        headers = self._headers
        if (tp := UPSTREAM_TRACEPARENT.get()) is not None:
            headers = {**headers, "traceparent": tp}
        head = self._client.head("POST", endpoint.value, headers, len(data))
        deadline = attempt_deadline(self._total_s)
        try:
            return await self._client.request(head, data, self._read_s, deadline)
        except (TimeoutError, OSError) as e:
            raise self._transport_error(e) from None

    async def _read(self, resp: Response) -> bytes:
        try:
            return await resp.read()
        except (TimeoutError, OSError) as e:
            raise self._transport_error(e) from None

    async def _chunks(self, resp: Response) -> AsyncIterator[bytes]:
        try:
            async for piece in resp.iter_chunks():
                yield piece
        except (TimeoutError, OSError) as e:
            raise self._transport_error(e) from None

    async def _post_json(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self._post(endpoint, body)
        raw = await self._read(resp)
        if resp.status >= 400:
            raise self._status_error(resp.status, raw)
        return self._parse(raw)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"model {self.name!r} returned a response that is not a JSON object",
                model=self.name,
                retryable=False,
            ).after_send()
        return data

    def _message(self, data: Any) -> str:
        msg = ""
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict):
                msg = str(err.get("message", ""))
            elif isinstance(err, str):
                msg = err
        if self._api_key:
            msg = msg.replace(self._api_key, "[redacted]")
        return msg[:_MAX_MESSAGE]

    def _status_error(self, status: int, raw: bytes) -> UpstreamError:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        detail = self._message(data)
        if status == 429 or status >= 500:
            err = UpstreamError(
                f"model {self.name!r} failed with HTTP {status}",
                model=self.name,
                retryable=True,
                upstream_status=status,
            )  # a 504 comes from a gateway in front that gave up: the model may still run
            return err.after_send() if status == 504 else err
        if status in (401, 403, 404):
            # Our own credentials or configuration are wrong: never echo the upstream's text,
            # which can quote the key; the client cannot fix it, so it is a gateway error.
            return UpstreamError(
                f"model {self.name!r} refused the gateway's credentials or model id "
                f"(HTTP {status}); check the model's configuration",
                model=self.name,
                retryable=False,
                upstream_status=status,
            )
        rejected = UpstreamRejected(
            f"model {self.name!r} rejected the request: {detail or f'HTTP {status}'}",
            model=self.name,
            upstream_status=status,
        )
        if isinstance(data, dict) and exceeds_context(data.get("error")):
            rejected.code = CONTEXT_EXCEEDED  # a larger window may take it (resilience.py)
        return rejected

    def _transport_error(self, e: BaseException) -> UpstreamError:
        if isinstance(e, NotSent):  # nothing reached the upstream: safe to try again
            return UpstreamError(
                f"model {self.name!r} is unreachable ({e})", model=self.name, retryable=True
            )
        if isinstance(e, TimeoutError):
            return UpstreamTimeout(f"model {self.name!r} timed out", model=self.name).after_send()
        if isinstance(e, TooLarge):
            what = str(e).removeprefix("the upstream's ")
            return UpstreamError(
                f"model {self.name!r} sent too much: {what} (see the model's limits)",
                model=self.name,
                retryable=False,
            ).after_send()
        return UpstreamError(
            f"model {self.name!r} dropped the connection ({type(e).__name__})",
            model=self.name,
            retryable=False,
        ).after_send()


class Lines:
    """Split a stream into lines without copying its buffer per piece (a line trickling in
    byte by byte stays linear); `overlong` once a line passed `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self._buf = bytearray()
        self._cap = cap
        self.overlong = False

    def feed(self, piece: bytes) -> list[bytes]:
        self._buf += piece
        if b"\n" not in piece:
            self.overlong = len(self._buf) > self._cap
            return []
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        self.overlong = len(rest) > self._cap or any(len(x) > self._cap for x in lines)
        return [bytes(x) for x in lines]


def client_for(name: str, cfg: ModelConfig) -> Client:
    """The model's HTTP client; a TLS file or proxy that cannot work is a ConfigError now."""
    assert cfg.base_url is not None
    lim = cfg.limits
    limits = Limits(lim.max_response_bytes, lim.max_header_bytes, lim.max_headers)
    tls = None
    if cfg.ca_bundle or cfg.client_cert:
        try:
            tls = tls_context(cfg.ca_bundle, cfg.client_cert, cfg.client_key)
        except (OSError, ssl.SSLError) as e:
            fields = "ca_bundle" if not cfg.client_cert else "ca_bundle/client_cert/client_key"
            raise ConfigError(f"models.{name}.{fields}: cannot load ({e}); fix the path") from None
    try:
        return Client(cfg.base_url, cfg.timeouts.connect_s, limits=limits, tls=tls)
    except ValueError as e:  # a proxy variable that names no http:// proxy
        raise ConfigError(f"models.{name}: invalid proxy in the environment: {e}") from None
