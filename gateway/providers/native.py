"""Upstreams that speak a client API natively (`models.<name>.apis`): OpenAI's Responses API
(`/responses`, Bearer key) and Anthropic's Messages API (`/messages`, `/messages/count_tokens`;
`x-api-key`, the client's `anthropic-version` and `anthropic-beta` forwarded unchanged). The
client's request is passed through (gateway/apis/native.py builds it) and the answer comes back
as it is: a whole response or message, or a stream of events, each yielded as its parsed `data`
object (which names its own `type`), unknown types included. Chat, completions and embeddings go
on as for any OpenAI-compatible upstream (a model may speak several APIs).

Errors follow the OpenAI-compatible provider's mapping (resilience.py's rule); an `error`
event inside a stream, or a stream cut before its last event, ends it (maybe billed)."""

from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any

import orjson

from gateway.config import ModelConfig
from gateway.errors import UpstreamError
from gateway.fault import stream_error_status
from gateway.providers.base import Completion, Endpoint
from gateway.providers.deadline import attempt_deadline
from gateway.providers.http1 import Response, header_safe
from gateway.providers.openai_compat import Lines, OpenAICompatProvider
from gateway.telemetry.tracecontext import UPSTREAM_TRACEPARENT
from gateway.usage import usage_from

NATIVE = frozenset({Endpoint.responses, Endpoint.messages, Endpoint.count_tokens})
ANTHROPIC = frozenset({Endpoint.messages, Endpoint.count_tokens})
# The request's headers that go to an Anthropic upstream unchanged (set by the translator).
FORWARDED: ContextVar[Mapping[str, str] | None] = ContextVar("frugal_forwarded", default=None)
FORWARD = ("anthropic-version", "anthropic-beta")
ANTHROPIC_VERSION = "2023-06-01"  # when the client sent none
# The events after which a stream is complete.
_LAST = frozenset({"response.completed", "response.failed", "response.incomplete",
                   "message_stop"})  # fmt: skip


def forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of a client request to forward, where a header can carry them."""
    return {k: headers[k] for k in FORWARD if k in headers and header_safe(headers[k])}


class NativeProvider(OpenAICompatProvider):
    def __init__(self, name: str, cfg: ModelConfig, api_key: str | None) -> None:
        super().__init__(name, cfg, api_key)
        self._anthropic = {k: v for k, v in self._headers.items() if k != "Authorization"}
        if api_key:
            self._anthropic["x-api-key"] = api_key

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        if endpoint not in NATIVE:
            return await super().complete(endpoint, body)
        data = await self._post_json(endpoint, body)
        return Completion(data, usage_from(data))

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        if endpoint not in NATIVE:
            async for chunk in super().stream(endpoint, body):
                yield chunk
            return
        resp = await self._post(endpoint, body)
        try:
            if resp.status >= 400:
                raise self._status_error(resp.status, await self._read(resp))
            async for event in self._events(resp):
                yield event
                if event.get("type") in _LAST:
                    return
            raise self._incomplete_stream()
        finally:
            resp.close()

    async def _events(self, resp: Response) -> AsyncIterator[dict[str, Any]]:
        lines = Lines(self._max_line)
        async for piece in self._chunks(resp):
            for raw in lines.feed(piece):
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue  # `event:` lines repeat the data's `type`; blank separators
                event = self._parse(line[5:].strip())
                if event.get("type") == "error":
                    raise UpstreamError(
                        f"model {self.name!r} sent an error mid-stream: {self._message(event)}",
                        model=self.name,
                        retryable=False,
                        upstream_status=stream_error_status(event),
                    ).after_send()
                yield event
            if lines.overlong:
                raise self._overlong_line()

    async def _post(self, endpoint: Endpoint, body: dict[str, Any]) -> Response:
        if endpoint not in ANTHROPIC:
            return await super()._post(endpoint, body)
        headers = {**self._anthropic, "anthropic-version": ANTHROPIC_VERSION}
        headers.update(FORWARDED.get() or {})
        if (tp := UPSTREAM_TRACEPARENT.get()) is not None:
            headers["traceparent"] = tp
        data = orjson.dumps(body)
        head = self._client.head("POST", endpoint.value, headers, len(data))
        try:
            return await self._client.request(
                head, data, self._read_s, attempt_deadline(self._total_s)
            )
        except (TimeoutError, OSError) as e:
            raise self._transport_error(e) from None
