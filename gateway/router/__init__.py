"""Prompt-difficulty routing: a scorer gives P(large model needed) for a conversation.

The pipeline depends only on `Scorer` and `load_scorer`; everything else in this package
(features, embeddings, training, evaluation) is the scorer's own business.
"""

from gateway.router.base import Scorer
from gateway.router.heuristic import HeuristicScorer
from gateway.router.loading import load_scorer

__all__ = ["HeuristicScorer", "Scorer", "load_scorer"]
