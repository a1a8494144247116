"""NAG similarity of documents to a target profile (paper §2.4).

    sim(d) = (1/L) * sum_l sum_{k in NAG_l(d)} P[l, k]

Each layer contributes at most 1 (its weights sum to 1), so sim is in [0, 1]. The
kernel works layer by layer on chunks of documents: one layer's weights (N doubles,
64 KiB at N = 8192) stay in cache while the chunk's K indices gather from them, and a
matrix-vector product with ones sums the K weights. Chunks are independent, and NumPy
releases the GIL in both steps, so chunks run on threads; each document's sum is
computed in the same order whatever the thread count, so scores are bit-identical.
Memory stays flat for any number of documents; an index outside the profile raises
instead of reading another neuron.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 8192


def _score_chunk(indices: np.ndarray, profile: np.ndarray, out: np.ndarray, lo: int) -> None:
    block = indices[lo: lo + CHUNK]
    L, K = block.shape[1], block.shape[2]
    ones = np.ones(K, np.float64)
    total = np.zeros(block.shape[0], np.float64)
    for layer in range(L):
        total += np.take(profile[layer], block[:, layer, :]) @ ones
    out[lo: lo + block.shape[0]] = total / L


def similarity(indices: np.ndarray, profile: np.ndarray, workers: int | None = None) -> np.ndarray:
    """indices (n, L, K) integer, profile (L, N) float64 -> scores (n,) float64.

    ``workers`` threads (default: the machine's cores, at most 8) share the chunks.
    """
    n, L, K = indices.shape
    Lp, N = profile.shape
    if L != Lp:
        raise ValueError(f"documents have {L} layers but the profile has {Lp}; they come from different models")
    profile = np.ascontiguousarray(profile, dtype=np.float64)
    out = np.empty(n, np.float64)
    starts = range(0, n, CHUNK)
    workers = min(workers or os.cpu_count() or 1, 8, len(starts) or 1)
    if workers == 1:
        for lo in starts:
            _score_chunk(indices, profile, out, lo)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda lo: _score_chunk(indices, profile, out, lo), starts))
    return out
