"""The one interface the request path uses to score a prompt's difficulty."""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Scorer(Protocol):
    """Scores a conversation: the probability (0..1) that the large tier is needed.

    `score` is synchronous and CPU-bound; the pipeline runs it in a worker thread when
    `blocking` is true, inline otherwise. It must be thread-safe and must not raise for any
    well-formed OpenAI `messages` list (content may be a string, a list of parts, or None).
    """

    name: str
    blocking: bool

    def score(self, messages: Sequence[Mapping[str, Any]], tools: bool = False) -> float: ...
