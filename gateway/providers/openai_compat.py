"""OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp, Ollama, ...) without litellm on the
hot path, over the small HTTP/1.1 client in http1.py (chosen by measurement: httpx, then aiohttp,
cost several times more CPU per call; see the README's benchmark)."""

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.config import ModelConfig
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.fault import stream_error_status
from gateway.providers.base import Completion, Endpoint
from gateway.providers.http1 import Client, Response
from gateway.telemetry.tracecontext import UPSTREAM_TRACEPARENT
from gateway.usage import usage_from

log = logging.getLogger("frugal.upstream")
_MAX_MESSAGE = 500


class OpenAICompatProvider:
    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        assert cfg.base_url is not None
        self.name = name
        self._client = Client(cfg.base_url, cfg.timeouts.connect_s)
        self._read_s = cfg.timeouts.read_s
        self._api_key = api_key
        self._headers = {"Content-Type": "application/json", "Accept": "application/json",
                         "User-Agent": "frugal"}  # fmt: skip
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

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
            rest = b""
            async for piece in self._chunks(resp):
                lines = (rest + piece).split(b"\n")
                rest = lines.pop()
                for raw in lines:
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
                        )
                    yield chunk
                if done:
                    break
            if not done:
                raise UpstreamError(
                    f"model {self.name!r} ended the stream before it was complete",
                    model=self.name,
                    retryable=True,
                )
        finally:
            resp.close()

    async def ready(self) -> bool:
        try:
            head = self._client.head("GET", "models", self._headers, None)
            resp = await self._client.request(head, b"", 2.0)
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
        try:
            return await self._client.request(head, data, self._read_s)
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
                retryable=True,
            )
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
            detail = self._message(orjson.loads(raw))
        except orjson.JSONDecodeError:
            detail = ""
        if status == 429 or status >= 500:
            return UpstreamError(
                f"model {self.name!r} failed with HTTP {status}",
                model=self.name,
                retryable=True,
                upstream_status=status,
            )
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
        return UpstreamRejected(
            f"model {self.name!r} rejected the request: {detail or f'HTTP {status}'}",
            model=self.name,
            upstream_status=status,
        )

    def _transport_error(self, e: BaseException) -> UpstreamError:
        if isinstance(e, TimeoutError):
            return UpstreamTimeout(f"model {self.name!r} timed out", model=self.name)
        return UpstreamError(
            f"model {self.name!r} is unreachable or dropped the connection ({type(e).__name__})",
            model=self.name,
            retryable=True,
        )
