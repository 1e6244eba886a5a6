"""Bench-only: the gateway with its upstream client swapped for httpx, to measure the hot-path
client choice. Nothing under gateway/ changes: `build_provider` is monkeypatched so every
`openai` model gets `HttpxProvider` (same parsing and error mapping as the real provider, only
the transport differs), then uvicorn is started the way `frugal serve` starts it (one worker,
loop and HTTP parser "auto", log level warning, no access log).

    .venv/bin/python bench/httpx_gateway.py --config bench.yaml --port 8090 [--client aiohttp]
"""

import argparse
import logging
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
from gateway.providers.base import Completion, Endpoint, Provider
from gateway.providers.litellm_provider import LiteLLMProvider
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.usage import usage_from

_clients: dict[int, httpx.AsyncClient] = {}


def shared_client(session: aiohttp.ClientSession) -> httpx.AsyncClient:
    """One httpx client per gateway, like the one aiohttp session (limits as generous)."""
    key = id(session)
    if key not in _clients:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        timeout = httpx.Timeout(connect=5.0, read=120.0, write=None, pool=None)
        _clients[key] = httpx.AsyncClient(limits=limits, timeout=timeout)
    return _clients[key]


class HttpxProvider(OpenAICompatProvider):
    def __init__(
        self, name: str, cfg: ModelConfig, session: aiohttp.ClientSession, api_key: str | None
    ) -> None:
        super().__init__(name, cfg, session, api_key)
        self._client = shared_client(session)

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        try:
            resp = await self._client.post(
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
            async with self._client.stream(
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
        for client in list(_clients.values()):
            if not client.is_closed:
                await client.aclose()


def build_httpx_provider(name: str, cfg: ModelConfig, session: aiohttp.ClientSession) -> Provider:
    api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if cfg.provider == "openai":
        return HttpxProvider(name, cfg, session, api_key)
    return LiteLLMProvider(name, cfg, api_key)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client", choices=["httpx", "aiohttp"], default="httpx")
    args = p.parse_args()
    logging.basicConfig(
        level=os.environ.get("FRUGAL_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.client == "httpx":
        # runtime.py imported the name, so patch it there as well as in the registry.
        registry.build_provider = build_httpx_provider
        runtime.build_provider = build_httpx_provider  # type: ignore[attr-defined]
    app = create_app(load_settings(Path(args.config)))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
