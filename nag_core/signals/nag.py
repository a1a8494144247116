"""NAG as a scorer with the signals' interface: extraction, profile, similarity.

The pipeline's own pieces, composed: ``Extractor`` keeps each text's top-K neurons per
layer (default ``fwd_up``, K = 20, ``max_length`` = 120, paper defaults),
``build_profile`` turns the target texts' neurons into per-layer weights
P[l, k] = c[l, k] / sum_j c[l, j], and ``similarity`` scores each document by
(1/L) sum_l sum_{k in NAG_l(d)} P[l, k], in [0, 1].

``profile="contrastive"`` scores with ``contrastive_profile`` instead: the log ratio of
the target's neuron frequencies to the pool's own (the pool being scored is the
background), the recipe ``benchmarks/bench_recipes.py`` chose on dev targets with K = 200.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nag_core.extraction import Extractor
from nag_core.graph import build_profile, contrastive_profile, neuron_counts
from nag_core.scoring import similarity

CONTRASTIVE_TOP_K = 200  # the dev-chosen K of the contrastive recipe (benchmarks/results/recipes.md)


def extractor(model, tokenizer, *, neuron_type: str = "fwd_up", top_k: int = 20, max_length: int = 120,
              batch_size: int = 32) -> Extractor:
    return Extractor(model, tokenizer, neuron_types=(neuron_type,), top_k=top_k, max_length=max_length,
                     batch_size=batch_size)


def nag_features(texts: Sequence[str], ex: Extractor) -> np.ndarray:
    """Top-K neuron indices (n, L, K) uint16 of the extractor's (single) neuron type."""
    feats, _ = ex.extract(list(texts))
    return feats[ex.neuron_types[0]].indices


def score_from_indices(pool_indices: np.ndarray, target_indices: np.ndarray, width: int, *,
                       profile: str = "frequency", smoothing: float = 0.5) -> np.ndarray:
    if len(target_indices) == 0:
        raise ValueError("nag needs at least one target text")
    if profile == "frequency":
        weights = build_profile(target_indices, width)[1]
    elif profile == "contrastive":
        weights = contrastive_profile(neuron_counts(target_indices, width), neuron_counts(pool_indices, width), smoothing)
    else:
        raise ValueError(f"unknown NAG profile {profile!r}; known: frequency, contrastive")
    return similarity(pool_indices, weights)


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, model=None, tokenizer=None,
          neuron_type: str = "fwd_up", top_k: int = 20, max_length: int = 120, batch_size: int = 32,
          profile: str = "frequency", smoothing: float = 0.5) -> np.ndarray:
    """NAG similarity of each pool text to the targets' profile; loads MiniLM when no model is given."""
    if not target_texts:
        raise ValueError("nag needs at least one target text")
    if model is None or tokenizer is None:
        from nag_core.signals._model import default_model

        model, tokenizer = default_model()
    ex = extractor(model, tokenizer, neuron_type=neuron_type, top_k=top_k, max_length=max_length,
                   batch_size=batch_size)
    return score_from_indices(nag_features(pool_texts, ex), nag_features(target_texts, ex), ex.width(neuron_type),
                              profile=profile, smoothing=smoothing)


def score_contrastive(pool_texts: Sequence[str], target_texts: Sequence[str], **options) -> np.ndarray:
    """The contrastive recipe at its chosen K; any option of ``score`` may override it."""
    return score(pool_texts, target_texts, **({"top_k": CONTRASTIVE_TOP_K, "profile": "contrastive"} | options))
