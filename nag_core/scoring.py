"""NAG similarity of documents to a target profile (paper §2.4).

    sim(d) = (1/L) * sum_l sum_{k in NAG_l(d)} P[l, k]

Each layer contributes at most 1 (its weights sum to 1), so sim is in [0, 1]. The
kernel gathers the K profile weights of each document's neurons from the flattened
(L*N) profile, sums them, and averages over layers; it runs in chunks so memory stays
flat for any number of documents.
"""

from __future__ import annotations

import numpy as np

CHUNK = 65536


def similarity(indices: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """indices (n, L, K) integer, profile (L, N) float64 -> scores (n,) float64."""
    n, L, K = indices.shape
    Lp, N = profile.shape
    if L != Lp:
        raise ValueError(f"documents have {L} layers but the profile has {Lp}; they come from different models")
    flat_profile = np.ascontiguousarray(profile, dtype=np.float64).reshape(-1)
    offsets = (np.arange(L, dtype=np.int64) * N)[None, :, None]
    out = np.empty(n, np.float64)
    for lo in range(0, n, CHUNK):
        block = indices[lo: lo + CHUNK].astype(np.int64) + offsets
        out[lo: lo + CHUNK] = flat_profile[block].sum(axis=(1, 2)) / L
    return out
