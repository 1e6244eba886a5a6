"""The one small interface every provider implements. Each call returns its usage; each
provider maps its own errors to `gateway.errors` at its boundary."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gateway.usage import Usage


class Endpoint(StrEnum):
    chat = "chat/completions"
    completions = "completions"
    embeddings = "embeddings"
    # Client APIs bridged onto chat completions by a translator (gateway/apis/).
    messages = "messages"
    count_tokens = "messages/count_tokens"
    responses = "responses"


@dataclass(slots=True)
class Completion:
    body: dict[str, Any]
    usage: Usage | None  # None when the upstream reported none (the caller estimates)


class Provider(Protocol):
    name: str

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        """A whole (non-streamed) chat or text completion."""

    def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Streamed chunks as OpenAI-shaped dicts; a chunk with `usage` carries the usage."""

    async def embed(self, body: dict[str, Any]) -> Completion:
        """Embeddings for `body["input"]`."""

    async def ready(self) -> bool:
        """Whether the upstream answers at all (for /readyz)."""

    async def close(self) -> None: ...
