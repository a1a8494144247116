"""NAG similarity of documents to a target profile (paper §2.4).

    sim(d) = (1/L) * sum_l sum_{k in NAG_l(d)} P[l, k]

Each layer contributes at most 1 (its weights sum to 1), so sim is in [0, 1]. The
kernel works layer by layer on chunks of documents: one layer's weights (N doubles,
64 KiB at N = 8192) stay in cache while the chunk's K indices gather from them, and a
matrix-vector product with ones sums the K weights. Memory stays flat for any number
of documents; an index outside the profile raises instead of reading another neuron.
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096


def similarity(indices: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """indices (n, L, K) integer, profile (L, N) float64 -> scores (n,) float64."""
    n, L, K = indices.shape
    Lp, N = profile.shape
    if L != Lp:
        raise ValueError(f"documents have {L} layers but the profile has {Lp}; they come from different models")
    profile = np.ascontiguousarray(profile, dtype=np.float64)
    ones = np.ones(K, np.float64)
    out = np.empty(n, np.float64)
    for lo in range(0, n, CHUNK):
        block = indices[lo: lo + CHUNK]
        total = np.zeros(block.shape[0], np.float64)
        for layer in range(L):
            total += np.take(profile[layer], block[:, layer, :]) @ ones
        out[lo: lo + CHUNK] = total / L
    return out
