"""NAG as a scorer with the baselines' interface: extraction, profile, similarity.

The pipeline's own pieces, composed: ``Extractor`` keeps each text's top-K neurons per
layer (default ``fwd_up``, K = 20, ``max_length`` = 120, paper defaults),
``build_profile`` turns the target texts' neurons into per-layer weights
P[l, k] = c[l, k] / sum_j c[l, j], and ``similarity`` scores each document by
(1/L) sum_l sum_{k in NAG_l(d)} P[l, k], in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nag_core.extraction import Extractor
from nag_core.graph import build_profile
from nag_core.scoring import similarity


def extractor(model, tokenizer, *, neuron_type: str = "fwd_up", top_k: int = 20, max_length: int = 120,
              batch_size: int = 32) -> Extractor:
    return Extractor(model, tokenizer, neuron_types=(neuron_type,), top_k=top_k, max_length=max_length,
                     batch_size=batch_size)


def nag_features(texts: Sequence[str], ex: Extractor) -> np.ndarray:
    """Top-K neuron indices (n, L, K) uint16 of the extractor's (single) neuron type."""
    feats, _ = ex.extract(list(texts))
    return feats[ex.neuron_types[0]].indices


def score_from_indices(pool_indices: np.ndarray, target_indices: np.ndarray, width: int) -> np.ndarray:
    if len(target_indices) == 0:
        raise ValueError("nag needs at least one target text")
    _, weights = build_profile(target_indices, width)
    return similarity(pool_indices, weights)


def score(pool_texts: Sequence[str], target_texts: Sequence[str], *, model=None, tokenizer=None,
          neuron_type: str = "fwd_up", top_k: int = 20, max_length: int = 120, batch_size: int = 32) -> np.ndarray:
    """NAG similarity of each pool text to the targets' profile; loads MiniLM when no model is given."""
    if not target_texts:
        raise ValueError("nag needs at least one target text")
    if model is None or tokenizer is None:
        from nag_core.baselines._model import default_model

        model, tokenizer = default_model()
    ex = extractor(model, tokenizer, neuron_type=neuron_type, top_k=top_k, max_length=max_length,
                   batch_size=batch_size)
    return score_from_indices(nag_features(pool_texts, ex), nag_features(target_texts, ex), ex.width(neuron_type))
