"""Providers that do not speak the OpenAI protocol (Anthropic, Bedrock, Vertex, ...) through
litellm, behind the same interface. litellm is imported on first use only (it takes seconds).

Only known OpenAI parameters are passed as litellm arguments; anything else the client sent
goes in `extra_body`, so no client field can become an `api_base`, a key or a provider switch.

Egress: litellm's HTTP clients (httpx, or aiohttp) read HTTPS_PROXY / HTTP_PROXY / NO_PROXY
from the environment themselves (tests/hardening/test_egress_proxy.py checks it). Each attempt
ends by the model's `timeouts.total_s` (and the request's hold, providers/deadline.py); errors
follow resilience.py's rule (a connect failure may be retried, anything later may have billed).
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.capabilities import CONTEXT_EXCEEDED
from gateway.config import ModelConfig
from gateway.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from gateway.providers.base import Completion, Endpoint
from gateway.providers.deadline import attempt_deadline
from gateway.telemetry.tracecontext import UPSTREAM_TRACEPARENT
from gateway.usage import usage_from

PASSED = frozenset(
    {
        "messages", "prompt", "input", "stream", "stream_options", "temperature", "top_p", "n",
        "stop", "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
        "seed", "logprobs", "top_logprobs", "dimensions", "encoding_format", "reasoning_effort",
    }
)  # fmt: skip


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.drop_params = True
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMProvider:
    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        self.name = name
        self._cfg = cfg
        self._api_key = api_key

    def _kwargs(self, body: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {k: v for k, v in body.items() if k in PASSED}
        extra = {k: v for k, v in body.items() if k not in PASSED and k != "model"}
        if extra:
            kw["extra_body"] = extra
        kw["model"] = self._cfg.model
        kw["timeout"] = self._cfg.timeouts.read_s
        kw["num_retries"] = 0  # retries are ours
        if self._cfg.base_url:
            kw["api_base"] = self._cfg.base_url
        if self._api_key:
            kw["api_key"] = self._api_key
        if (tp := UPSTREAM_TRACEPARENT.get()) is not None:
            kw["extra_headers"] = {"traceparent": tp}
        return kw

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        lib = _litellm()
        fn = lib.acompletion if endpoint is Endpoint.chat else lib.atext_completion
        try:
            async with asyncio.timeout(self._left(attempt_deadline(self._cfg.timeouts.total_s))):
                resp = await fn(**self._kwargs(body))
        except Exception as e:
            raise self._error(e) from None
        data: dict[str, Any] = resp.model_dump(exclude_none=True)
        return Completion(data, usage_from(data))

    @staticmethod
    def _left(deadline: float) -> float:
        return max(deadline - time.monotonic(), 0.0)

    async def embed(self, body: dict[str, Any]) -> Completion:
        lib = _litellm()
        try:
            async with asyncio.timeout(self._left(attempt_deadline(self._cfg.timeouts.total_s))):
                resp = await lib.aembedding(**self._kwargs(body))
        except Exception as e:
            raise self._error(e) from None
        data: dict[str, Any] = resp.model_dump(exclude_none=True)
        return Completion(data, usage_from(data))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        lib = _litellm()
        kw = self._kwargs(body)
        kw["stream"] = True
        fn = lib.acompletion if endpoint is Endpoint.chat else lib.atext_completion
        deadline = attempt_deadline(self._cfg.timeouts.total_s)
        try:
            async with asyncio.timeout(self._left(deadline)):
                resp = await fn(**kw)
            it = aiter(resp)
            while True:
                try:
                    async with asyncio.timeout(self._left(deadline)):
                        chunk = await anext(it)
                except StopAsyncIteration:
                    break
                yield chunk.model_dump(exclude_none=True)
        except Exception as e:
            raise self._error(e) from None

    async def ready(self) -> bool:
        return True  # hosted APIs: no cheap, key-free liveness probe

    async def close(self) -> None:
        return None

    def _error(self, e: Exception) -> UpstreamError:
        if isinstance(e, UpstreamError):
            return e
        import openai  # loaded with litellm; importing it up front cost every gateway ~30 MB

        if isinstance(e, openai.APIConnectionError | TimeoutError) and _not_sent(e):
            return UpstreamError(
                f"model {self.name!r} is unreachable", model=self.name, retryable=True
            )
        if isinstance(e, openai.APITimeoutError | TimeoutError):
            return UpstreamTimeout(f"model {self.name!r} timed out", model=self.name).after_send()
        if isinstance(e, openai.APIConnectionError):
            return UpstreamError(
                f"model {self.name!r} dropped the connection", model=self.name, retryable=False
            ).after_send()
        status = getattr(e, "status_code", None)
        if isinstance(status, int) and (status == 429 or status >= 500):
            err = UpstreamError(
                f"model {self.name!r} failed with HTTP {status}",
                model=self.name,
                retryable=True,
                upstream_status=status,
            )
            return err.after_send() if status == 504 else err
        if isinstance(status, int) and status in (400, 413, 422):
            msg = str(getattr(e, "message", "") or "")[:500]
            if self._api_key:
                msg = msg.replace(self._api_key, "[redacted]")
            rejected = UpstreamRejected(
                f"model {self.name!r} rejected the request: {msg}",
                model=self.name,
                upstream_status=status,
            )
            if type(e).__name__ == "ContextWindowExceededError":  # litellm's own mapping
                rejected.code = CONTEXT_EXCEEDED  # a larger window may take it (resilience.py)
            return rejected
        return UpstreamError(
            f"model {self.name!r} failed ({type(e).__name__}); check its configuration",
            model=self.name,
            retryable=False,
            upstream_status=status if isinstance(status, int) else None,
        )


# Exceptions (by class name, across httpx, aiohttp and the standard library) raised before a
# request could be written: the upstream never saw it.
_CONNECT_FAILURES = frozenset(
    {"ConnectError", "ConnectTimeout", "ClientConnectorError", "ClientConnectorDNSError",
     "ClientConnectorCertificateError", "ClientProxyConnectionError", "ConnectionRefusedError",
     "gaierror", "ProxyError", "SSLCertVerificationError"}
)  # fmt: skip


def _not_sent(e: BaseException) -> bool:
    seen: BaseException | None = e
    for _ in range(8):  # the cause chain: openai -> httpx / litellm's aiohttp transport -> OS
        if seen is None:
            return False
        if type(seen).__name__ in _CONNECT_FAILURES:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
