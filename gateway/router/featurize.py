"""The feature row the learned scorer builds per request (and training builds per example).

A row is the MiniLM embedding of the last user turn's core (few-shot preamble removed)
followed by the structural features. Rows for whole data sets (with the on-disk embedding
cache) are built by `lab/embeddings.py`.
"""

import numpy as np
import numpy.typing as npt

from gateway.router.conversation import Conversation
from gateway.router.features import FEATURE_NAMES, structural_features

N_FEATURES = 384 + len(FEATURE_NAMES)


def embedding_text(conv: Conversation) -> str:
    """What gets embedded: the core of the last user turn (the system prompt if there is none)."""
    return conv.core or conv.system


def row(conv: Conversation, embedding: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.concatenate([embedding.astype(np.float32), structural_features(conv)])
