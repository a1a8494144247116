"""Data-selection signals: one interface for every scorer, lexical or model-based.

Every scorer has one interface::

    score(pool_texts, target_texts, **options) -> np.ndarray  # (len(pool_texts),) float64

Higher means more target-like; ranking the pool by score, highest first, and keeping
a budget's worth of documents is the selection. The scorers:

* ``random``: seeded uniform scores, the floor any method must beat.
* ``dsir``: log importance ratio under hashed bag-of-n-gram models (Xie et al., 2023).
* ``bm25``: Okapi BM25 of each document against the centroid query of the targets.
* ``embedding``: cosine of mean-pooled sentence embeddings to the mean target embedding.
* ``nag``: NAG similarity to the target's neuron profile (paper §2.4).
* ``nag_contrastive``: NAG with the contrastive profile (log ratio of target to pool
  neuron frequencies) at K = 200, this project's recipe.

The two model-based scorers also expose their feature step (``embed``, ``nag_features``)
so a caller can cache pool features and score many targets against them.

Nothing here imports the Dagster layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nag_core.signals import bm25, dsir, embedding, nag, random_baseline

Scorer = Callable[..., np.ndarray]

SCORERS: dict[str, Scorer] = {
    "random": random_baseline.score,
    "dsir": dsir.score,
    "bm25": bm25.score,
    "embedding": embedding.score,
    "nag": nag.score,
    "nag_contrastive": nag.score_contrastive,
}


def score(method: str, pool_texts: Sequence[str], target_texts: Sequence[str], **options) -> np.ndarray:
    """Scores of ``pool_texts`` by the named method; options go to that scorer."""
    if method not in SCORERS:
        raise ValueError(f"unknown baseline {method!r}; known: {sorted(SCORERS)}")
    return SCORERS[method](pool_texts, target_texts, **options)


__all__ = ["SCORERS", "score", "bm25", "dsir", "embedding", "nag", "random_baseline"]
