"""Bench-only: the gateway with its upstream client swapped for httpx or aiohttp, to measure the
hot-path client choice against the gateway's own (gateway/providers/http1.py). Nothing under
gateway/ changes: `build_provider` is monkeypatched so every `openai` model gets a provider with
the same parsing and error mapping as the real one, only the transport differs; then uvicorn is
started the way `frugal serve` starts it (one worker, loop and HTTP parser "auto", log level
warning, no access log).

    .venv/bin/python bench/client_gateway.py --config bench.yaml --port 8090 --client httpx
"""

import argparse
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import uvicorn

import gateway.providers.registry as registry
import gateway.runtime as runtime
from gateway.app import create_app
from gateway.config import ModelConfig, load_settings
from gateway.errors import UpstreamError
from gateway.logs import setup_logging
from gateway.providers.base import Completion, Endpoint, Provider
from gateway.providers.litellm_provider import LiteLLMProvider
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.usage import usage_from

_httpx: httpx.AsyncClient | None = None
_aiohttp: aiohttp.ClientSession | None = None


class HttpxProvider(OpenAICompatProvider):
    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        global _httpx
        super().__init__(name, cfg, api_key)
        assert cfg.base_url is not None
        self._base = cfg.base_url
        if _httpx is None:  # one client per gateway (limits as generous as the gateway's)
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            timeout = httpx.Timeout(connect=5.0, read=120.0, write=None, pool=None)
            _httpx = httpx.AsyncClient(limits=limits, timeout=timeout)
        self._httpx = _httpx

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        try:
            resp = await self._httpx.post(
                f"{self._base}/{endpoint.value}", content=orjson.dumps(body), headers=self._headers
            )
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None
        if resp.status_code >= 400:
            raise self._status_error(resp.status_code, resp.content)
        data = self._parse(resp.content)
        return Completion(data, usage_from(data))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        url = f"{self._base}/{endpoint.value}"
        try:
            async with self._httpx.stream(
                "POST", url, content=orjson.dumps(body), headers=self._headers
            ) as resp:
                if resp.status_code >= 400:
                    raise self._status_error(resp.status_code, await resp.aread())
                async for chunk in self._events(resp):
                    yield chunk
        except httpx.HTTPError as e:
            raise self._transport_error(e) from None

    async def _events(self, resp: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        async for line in resp.aiter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                return
            yield self._parse(payload.encode())
        raise UpstreamError(
            f"model {self.name!r} ended the stream early", model=self.name, retryable=True
        )

    async def close(self) -> None:
        if not self._httpx.is_closed:
            await self._httpx.aclose()


class AiohttpProvider(OpenAICompatProvider):
    """What the gateway used before http1.py (one shared session, no connection limit)."""

    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        super().__init__(name, cfg, api_key)
        assert cfg.base_url is not None
        self._base = cfg.base_url
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=120.0)

    def _session(self) -> aiohttp.ClientSession:
        global _aiohttp
        if _aiohttp is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
            _aiohttp = aiohttp.ClientSession(connector=connector)
        return _aiohttp

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        url = f"{self._base}/{endpoint.value}"
        try:
            async with self._session().post(url, data=orjson.dumps(body), headers=self._headers,
                                             timeout=self._timeout) as resp:  # fmt: skip
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._transport_error(e) from None
        if resp.status >= 400:
            raise self._status_error(resp.status, raw)
        data = self._parse(raw)
        return Completion(data, usage_from(data))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        url = f"{self._base}/{endpoint.value}"
        try:
            async with self._session().post(url, data=orjson.dumps(body), headers=self._headers,
                                             timeout=self._timeout) as resp:  # fmt: skip
                if resp.status >= 400:
                    raise self._status_error(resp.status, await resp.read())
                async for raw in resp.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        return
                    yield self._parse(payload)
        except (TimeoutError, aiohttp.ClientError) as e:
            raise self._transport_error(e) from None
        raise UpstreamError(
            f"model {self.name!r} ended the stream early", model=self.name, retryable=True
        )

    async def close(self) -> None:
        if _aiohttp is not None and not _aiohttp.closed:
            await _aiohttp.close()


CLIENTS = {"httpx": HttpxProvider, "aiohttp": AiohttpProvider}
_choice: type[OpenAICompatProvider] = HttpxProvider


def build_bench_provider(name: str, cfg: ModelConfig) -> Provider:
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if cfg.provider == "openai":
        return _choice(name, cfg, api_key)
    return LiteLLMProvider(name, cfg, api_key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client", choices=sorted(CLIENTS), default="httpx")
    args = p.parse_args()
    setup_logging()
    global _choice
    _choice = CLIENTS[args.client]
    # runtime.py imported the name, so patch it there as well as in the registry.
    registry.build_provider = build_bench_provider
    runtime.build_provider = build_bench_provider  # type: ignore[attr-defined]
    app = create_app(load_settings(Path(args.config)))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
