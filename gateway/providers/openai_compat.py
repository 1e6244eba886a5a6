"""OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp, Ollama, ...) over aiohttp, without
litellm on the hot path. aiohttp, not httpx: measured several times faster under concurrency
(see the README's benchmark and the field notes)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gateway.config import ModelConfig
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.providers.base import Completion, Endpoint
from gateway.usage import usage_from

log = logging.getLogger("frugal.upstream")
_MAX_MESSAGE = 500


class OpenAICompatProvider:
    def __init__(
        self, name: str, cfg: ModelConfig, session: aiohttp.ClientSession, api_key: str | None
    ) -> None:
        assert cfg.base_url is not None
        self.name = name
        self._cfg = cfg
        self._session = session
        self._base = cfg.base_url
        self._api_key = api_key
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=cfg.timeouts.connect_s, sock_read=cfg.timeouts.read_s
        )

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        data = await self._post_json(endpoint, body)
        return Completion(data, usage_from(data))

    async def embed(self, body: dict[str, Any]) -> Completion:
        return await self.complete(Endpoint.embeddings, body)

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self._post(endpoint, body) as resp:
                if resp.status >= 400:
                    raise self._status_error(resp.status, await resp.read())
                done = False
                async for raw in resp.content:
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
                        )
                    yield chunk
                if not done:
                    raise UpstreamError(
                        f"model {self.name!r} ended the stream before it was complete",
                        model=self.name,
                        retryable=True,
                    )
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._transport_error(e) from None

    async def ready(self) -> bool:
        try:
            async with self._session.get(
                f"{self._base}/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=2.0),
            ) as resp:
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def close(self) -> None:  # the session is shared and closed by its owner
        return None

    def _post(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> "aiohttp.client._RequestContextManager":
        return self._session.post(
            f"{self._base}/{endpoint.value}",
            data=orjson.dumps(body),
            headers=self._headers,
            timeout=self._timeout,
        )

    async def _post_json(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._post(endpoint, body) as resp:
                raw = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, raw)
                return self._parse(raw)
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._transport_error(e) from None

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
        if isinstance(e, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
            return UpstreamTimeout(f"model {self.name!r} timed out", model=self.name)
        return UpstreamError(
            f"model {self.name!r} is unreachable or dropped the connection ({type(e).__name__})",
            model=self.name,
            retryable=True,
        )
